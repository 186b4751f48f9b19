"""``cloudfree weights fetch / import``: download, resume, verify, convert, from a local server.

Never the internet: a threaded HTTP server on 127.0.0.1 serves a Keras HDF5 checkpoint written
here (the tiny DSen2-CR B2 F8 of tests/models/test_keras_import.py), and the faults a real
download meets: a truncated file, a wrong checksum, a connection dropped halfway, and an HTML
page where the file should be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.errors import CloudfreeError, DataError
from cloudfree.models.keras_import import keras_state_dict
from cloudfree.models.weights import load_weights, read_metadata
from cloudfree.weights import cache, registry
from cloudfree.weights.fetch import fetch, import_file

pytest.importorskip("gdown")
pytest.importorskip("h5py")
from tests.models.test_keras_import import _keras_weights, write_keras  # noqa: E402

TINY = {"include_sar": True, "num_layers": 2, "feature_size": 8}
HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"


class _Server(ThreadingHTTPServer):
    files: dict[str, bytes]
    modes: dict[str, str]
    seen: list[tuple[str, str | None]]
    dropped: set[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, rng = self.path, self.headers.get("Range")
        self.server.seen.append((path, rng))
        mode = self.server.modes.get(path, "good")
        if path not in self.server.files:
            self.send_error(404)
            return
        body = self.server.files[path]
        if mode == "html":
            self._send(200, HTML, "text/html; charset=utf-8")
            return
        if mode == "truncated":  # a short file, announced as such: only verification sees it
            self._send(200, body[: len(body) // 2])
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if mode == "drop" and path not in self.server.dropped:
            self.server.dropped.add(path)  # the first transfer dies halfway, later ones work
            self.wfile.write(body[start : len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def _send(self, code: int, body: bytes, kind: str = "application/octet-stream") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.modes, srv.seen, srv.dropped = {}, {}, [], set()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache (CLOUDFREE_HOME) for the test."""
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def keras_file(tmp_path: Path) -> Path:
    return write_keras(tmp_path / "model_tiny.hdf5", _keras_weights(True, 2, 8), "model_save")


@pytest.fixture
def big_keras_file(tmp_path: Path) -> Path:
    """A 3.7 MB checkpoint (B2 F160): several of gdown's 512 KiB chunks arrive before a drop."""
    return write_keras(tmp_path / "model_tiny.hdf5", _keras_weights(True, 2, 160))


def _url(server: _Server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def _register(monkeypatch: pytest.MonkeyPatch, source: str, **fields: object) -> None:
    """Add an entry 'tiny-sar' (like the published ones: Keras, size and SHA-256 unknown)."""
    published = next(w for w in registry.WEIGHTS if w.name == "dsen2cr-sar-carl")
    fields = {"config": TINY, **fields}
    entry = dataclasses.replace(
        published, name="tiny-sar", source=source, filename="model_tiny.hdf5", **fields
    )
    monkeypatch.setattr(registry, "WEIGHTS", (*registry.WEIGHTS, entry))


def _serve(server: _Server, keras_file: Path, mode: str = "good") -> str:
    server.files["/model_tiny.hdf5"] = keras_file.read_bytes()
    server.modes["/model_tiny.hdf5"] = mode
    return _url(server, "model_tiny.hdf5")


def _nothing_final(home: Path) -> None:
    """The cache holds no file under the final name, and the entry does not count as cached."""
    assert not cache.weights_path("tiny-sar").exists()
    assert cache.cached_path("tiny-sar") is None
    assert not (home / "weights").exists() or not any((home / "weights").iterdir())


def test_fetch_downloads_verifies_converts_and_records(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _register(monkeypatch, _serve(server, keras_file))
    with pytest.raises(DataError, match="weights fetch tiny-sar"):
        registry.get_weights("tiny-sar").path()  # not cached: the error gives the command
    done = fetch("tiny-sar")
    assert "%" in capsys.readouterr().err  # gdown's tqdm progress bar, on stderr
    assert done.path == home / "weights" / "tiny-sar.safetensors" and done.fresh
    # The converted file loads, all tensors equal the Keras ones (transposed).
    _, state = keras_state_dict(keras_file)
    model = load_weights(done.path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert read_metadata(done.path)["source"] == "model_tiny.hdf5"
    # The record: the download's checksum (independently computed) and the file's.
    rec = cache.read_record("tiny-sar")
    assert rec["download_sha256"] == hashlib.sha256(keras_file.read_bytes()).hexdigest()
    assert rec["sha256"] == hashlib.sha256(done.path.read_bytes()).hexdigest()
    assert rec["config"] == TINY and rec["source"].endswith("/model_tiny.hdf5")
    assert not any((home / "downloads" / "tiny-sar").iterdir())  # staging emptied
    assert registry.find_weights("tiny-sar") == done.path
    # A second fetch downloads nothing.
    n = len(server.seen)
    assert not fetch("tiny-sar").fresh and len(server.seen) == n


def test_dropped_connection_is_resumed_by_the_next_run(
    server: _Server, home: Path, big_keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(
        monkeypatch, _serve(server, big_keras_file, "drop"), config={**TINY, "feature_size": 160}
    )
    size = big_keras_file.stat().st_size
    with pytest.raises(CloudfreeError, match="run the same command again to resume"):
        fetch("tiny-sar", retries=0, quiet=True)
    _nothing_final(home)
    parts = list((home / "downloads" / "tiny-sar").glob("*.part"))
    kept = parts[0].stat().st_size
    assert len(parts) == 1 and 0 < kept <= size // 2  # the whole chunks received
    done = fetch("tiny-sar", retries=0, quiet=True)
    assert server.seen[-1] == ("/model_tiny.hdf5", f"bytes={kept}-")  # resumed: a Range request
    assert (
        cache.read_record("tiny-sar")["download_sha256"]
        == hashlib.sha256(big_keras_file.read_bytes()).hexdigest()
    )
    assert load_weights(done.path).config.feature_size == 160


def test_dropped_connection_is_retried_within_one_run(
    server: _Server, home: Path, big_keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(
        monkeypatch, _serve(server, big_keras_file, "drop"), config={**TINY, "feature_size": 160}
    )
    done = fetch("tiny-sar", retries=1, quiet=True)
    size = big_keras_file.stat().st_size
    ranges = [r for p, r in server.seen if r]
    assert len(ranges) == 1 and 0 < int(ranges[0][6:-1]) <= size // 2
    assert cache.read_record("tiny-sar")["download_bytes"] == size
    assert done.path.is_file()


def test_truncated_download_is_refused_and_not_kept(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, _serve(server, keras_file, "truncated"))
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        fetch("tiny-sar", quiet=True)
    _nothing_final(home)
    assert not any((home / "downloads" / "tiny-sar").iterdir())  # not resumed onto next time
    # With a registered size, the size check names both numbers.
    monkeypatch.setattr(registry, "WEIGHTS", registry.WEIGHTS[:-1])
    _register(monkeypatch, _serve(server, keras_file, "truncated"),
              size_bytes=keras_file.stat().st_size)  # fmt: skip
    with pytest.raises(DataError, match=f"where 'tiny-sar' has {keras_file.stat().st_size}"):
        fetch("tiny-sar", quiet=True)
    _nothing_final(home)


def test_wrong_checksum_is_refused(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, _serve(server, keras_file), sha256="0" * 64)
    with pytest.raises(DataError, match="has SHA-256 [0-9a-f]{64} where 'tiny-sar' has 0000"):
        fetch("tiny-sar", quiet=True)
    _nothing_final(home)
    assert not any((home / "downloads" / "tiny-sar").iterdir())


def test_html_page_instead_of_the_file(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, _serve(server, keras_file, "html"))
    with pytest.raises(DataError, match="is a web page, not weights") as err:
        fetch("tiny-sar", quiet=True)
    assert "cloudfree weights import FILE --name NAME" in str(err.value)
    _nothing_final(home)


def test_server_errors_and_wrong_model(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, _url(server, "missing.hdf5"))
    with pytest.raises(CloudfreeError, match="404.*weights import model_tiny.hdf5 --name tiny-sar"):
        fetch("tiny-sar", quiet=True)
    # A mirror with the no-SAR file where the SAR model is expected: refused, naming both.
    nosar = write_keras(keras_file.with_name("nosar.h5"), _keras_weights(False, 2, 8))
    server.files["/nosar.h5"] = nosar.read_bytes()
    with pytest.raises(DataError, match=r"holds dsen2cr-nosar \(include_sar=False.*expected "
                       r"dsen2cr \(include_sar=True, num_layers=2, feature_size=8\)"):  # fmt: skip
        fetch("tiny-sar", url=_url(server, "nosar.h5"), quiet=True)
    _nothing_final(home)
    with pytest.raises(CloudfreeError, match="ships with cloudfree"):
        fetch("hybrid-sar")
    with pytest.raises(CloudfreeError, match="did you mean 'dsen2cr-sar-carl'"):
        fetch("dsen2cr-sar-crl")


def test_the_published_entries_accept_the_papers_layout(
    server: _Server, home: Path, tmp_path: Path
) -> None:
    """The real registry entry, from a mirror: a B16 F256 file with the published layout
    (shapes only, no data stored, so it stays small) passes and converts to the paper's model."""
    from tests.models.test_keras_import import _write_layers, h5py

    fake = [(np.empty((3, 3, 15, 256), np.float32), np.empty(256, np.float32))]
    fake += [(np.empty((3, 3, 256, 256), np.float32), np.empty(256, np.float32))] * 32
    fake += [(np.empty((3, 3, 256, 13), np.float32), np.empty(13, np.float32))]
    path = tmp_path / "model_SARcarl.hdf5"
    with h5py.File(path, "w") as f:
        _write_layers(f, fake, first=1, data=False)
    server.files["/model_SARcarl.hdf5"] = path.read_bytes()
    done = fetch("dsen2cr-sar-carl", url=_url(server, "model_SARcarl.hdf5"), quiet=True)
    meta = read_metadata(done.path)
    assert meta["cloudfree.model"] == "dsen2cr"
    assert done.record["config"] == {"include_sar": True, "num_layers": 16, "feature_size": 256}
    assert done.path.stat().st_size > 4 * 18_947_341  # every parameter, float32
    assert registry.find_weights("dsen2cr-sar-carl") == done.path


def test_import_a_registry_file_and_one_of_your_own(
    home: Path, keras_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, "https://example.invalid/never-used")
    done = import_file(keras_file, "tiny-sar")  # offline: the file downloaded by hand
    assert done.path == cache.weights_path("tiny-sar") and keras_file.is_file()  # kept
    assert not cache.read_record("tiny-sar").get("local")
    # Under a new name: a local entry, listed, loadable by name, refused twice without --force.
    mine = import_file(done.path, "my-alps-model")
    entry = registry.get_weights("my-alps-model")
    assert entry.local and entry.model == "dsen2cr" and entry.source == "local"
    assert registry.find_weights("my-alps-model") == mine.path
    with pytest.raises(CloudfreeError, match="already imported"):
        import_file(done.path, "my-alps-model")
    assert import_file(done.path, "my-alps-model", force=True).fresh
    with pytest.raises(CloudfreeError, match="very close to the registry entry 'dsen2cr-sar-carl'"):
        import_file(keras_file, "dsen2cr-sar-carll")
    with pytest.raises(CloudfreeError, match="bundled entry"):
        import_file(keras_file, "hybrid-sar")
    with pytest.raises(CloudfreeError, match="not a baseline"):
        import_file(keras_file, "mask-fill")
    with pytest.raises(CloudfreeError, match="lower case"):
        import_file(keras_file, "../evil")
    page = tmp_path / "uc.html"
    page.write_bytes(HTML)
    with pytest.raises(DataError, match="web page"):
        import_file(page, "tiny-sar")


def test_cli_list_show_fetch_import(
    server: _Server, home: Path, keras_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from cloudfree.cli import main

    _register(monkeypatch, _serve(server, keras_file))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    # 18,947,341 float32 parameters: the size shown before the file is known.
    assert "google drive" in rows["dsen2cr-sar-carl"] and ">= 75.8 MB" in rows["dsen2cr-sar-carl"]
    assert rows["dsen2cr-sar-carl"].rstrip().endswith("no")
    assert rows["hybrid-sar"].rstrip().endswith("bundled") and "0.7 MB" in rows["hybrid-sar"]
    assert rows["tiny-sar"].rstrip().endswith("no")
    assert "cloudfree weights fetch NAME" in out

    assert main(["weights", "show", "dsen2cr-sar-carl"]) == 0
    out = capsys.readouterr().out
    assert "GPL-3.0" in out and "Meraner" in out and "github.com/ameraner/dsen2-cr" in out
    assert "num_layers=16, feature_size=256" in out
    assert "no; run: cloudfree weights fetch dsen2cr-sar-carl" in out

    assert main(["weights", "fetch", "tiny-sar", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert str(cache.weights_path("tiny-sar")) in out and "predict --checkpoint tiny-sar" in out
    assert main(["weights", "fetch", "tiny-sar"]) == 0
    assert "already cached" in capsys.readouterr().out
    assert main(["weights", "show", "tiny-sar"]) == 0
    out = capsys.readouterr().out
    assert f"cached     {cache.weights_path('tiny-sar')}" in out
    assert hashlib.sha256(keras_file.read_bytes()).hexdigest() in out

    assert main(["weights", "import", str(keras_file), "--name", "alps-2026"]) == 0
    capsys.readouterr()
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:] if line}
    assert "local" in rows["alps-2026"] and rows["tiny-sar"].rstrip().endswith("yes")

    assert main(["weights", "show", "hybrid-sr"]) == 1
    assert "did you mean 'hybrid-sar'" in capsys.readouterr().err
    server.modes["/model_tiny.hdf5"] = "html"
    assert main(["weights", "fetch", "tiny-sar", "--force", "--quiet"]) == 1
    assert "is a web page" in capsys.readouterr().err
    assert cache.cached_path("tiny-sar") is not None  # a failed --force keeps the good copy
