"""``cloudfree weights fetch uncrtaints-l2``: the UnCRtainTS checkpoint and its conf.json from a
pCloud public folder, through pCloud's public API (``showpublink``, ``getpublinkdownload``),
served here by a local mock on 127.0.0.1, never the internet; and ``weights import --conf``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import torch

from cloudfree.cli import main
from cloudfree.errors import CloudfreeError, DataError
from cloudfree.methods.load import load_method
from cloudfree.models.uncrtaints import UnCRtainTS
from cloudfree.weights import cache, registry
from cloudfree.weights.fetch import fetch, import_file

CODE = "kZsdbk0Z5Y2Y2UEm48XLwOvwSVlL8R2L3daV"  # the entry's public-link code


def _checkpoint(tmp: Path, variance: bool) -> tuple[bytes, bytes]:
    """A small UnCRtainTS checkpoint in upstream's layout and its conf.json."""
    torch.manual_seed(0)
    net = UnCRtainTS(
        encoder_widths=[8], decoder_widths=[8, 8], covmode="diag" if variance else None
    )
    path = tmp / "ck.pth.tar"
    torch.save({"epoch": 3, "state_dict_G": net.state_dict()}, path)
    conf = {"model": "uncrtaints", "pretrain": True, "input_t": 1, "use_sar": True,
            "encoder_widths": "[8]", "decoder_widths": "[8,8]",
            "out_conv": [26 if variance else 13], "covmode": "diag", "scale_by": 10.0,
            "loss": "MGNLL" if variance else "l2", "experiment_name": "monotemporalL2"}  # fmt: skip
    return path.read_bytes(), json.dumps(conf).encode()


class _Server(ThreadingHTTPServer):
    files: dict[int, tuple[str, bytes]]
    folder: str = "monotemporalL2"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        files = self.server.files
        if url.path == "/showpublink":
            if q.get("code") != CODE:
                self._json({"result": 7001, "error": "Invalid link code."})
                return
            contents = [{"name": n, "isfolder": False, "fileid": i} for i, (n, _) in files.items()]
            self._json({"result": 0, "metadata": {"name": "UnCRtainTS", "isfolder": True,
                        "contents": [{"name": self.server.folder, "isfolder": True,
                                      "contents": contents}]}})  # fmt: skip
        elif url.path == "/getpublinkdownload":
            host = f"127.0.0.1:{self.server.server_address[1]}"
            self._json({"result": 0, "hosts": [host], "path": f"/file/{q['fileid']}"})
        elif url.path.startswith("/file/"):
            _, body = files[int(url.path.rsplit("/", 1)[1])]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache (CLOUDFREE_HOME) for each test."""
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files = {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _api(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_fetch_from_the_pcloud_folder(server: _Server, tmp_path: Path) -> None:
    ck, conf = _checkpoint(tmp_path, variance=False)
    server.files = {11: ("model.pth.tar", ck), 12: ("conf.json", conf)}
    with pytest.raises(DataError, match=r"--conf monotemporalL2/conf\.json"):
        registry.get_weights("uncrtaints-l2").path()  # not cached: says how, also by hand
    done = fetch("uncrtaints-l2", url=_api(server), quiet=True)
    assert done.record["model"] == "uncrtaints" and done.record["config"]["covmode"] is None
    assert done.record["source"] == registry.UNCRTAINTS_PCLOUD
    assert not any(cache.download_dir("uncrtaints-l2").iterdir())  # staging emptied
    method = load_method("uncrtaints-l2", device="cpu")
    assert method.scaling == "reflectance" and not method.predicts_variance


def test_a_checkpoint_that_is_not_the_entrys_is_refused(server: _Server, tmp_path: Path) -> None:
    ck, conf = _checkpoint(tmp_path, variance=True)  # an NLL model where the L2 one should be
    server.files = {11: ("model.pth.tar", ck), 12: ("conf.json", conf)}
    with pytest.raises(DataError, match="for 'uncrtaints-l2'"):
        fetch("uncrtaints-l2", url=_api(server), quiet=True)
    assert cache.cached_path("uncrtaints-l2") is None
    assert not any(cache.download_dir("uncrtaints-l2").iterdir())  # nothing kept to resume onto


def test_import_needs_the_conf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck, conf = _checkpoint(tmp_path, variance=True)
    (tmp_path / "model.pth.tar").write_bytes(ck)
    (tmp_path / "conf.json").write_bytes(conf)
    with pytest.raises(DataError, match="--conf conf.json"):
        import_file(tmp_path / "model.pth.tar", "my-unc-nll")
    rc = main(["weights", "import", str(tmp_path / "model.pth.tar"), "--conf",
               str(tmp_path / "conf.json"), "--name", "my-unc-nll"])  # fmt: skip
    assert rc == 0
    method = load_method("my-unc-nll", device="cpu")
    assert method.predicts_variance and method.scaling == "reflectance"


def test_the_multi_temporal_checkpoint_is_fetched_and_converted(server: _Server) -> None:
    from cloudfree.models import load_weights
    from cloudfree.models.uncrtaints_mt import UnCRtainTSMT

    fixture = Path(__file__).parents[1] / "models" / "data" / "uncrtaints_mt"
    server.files = {21: ("model.pth.tar", (fixture / "model.pth.tar").read_bytes()),
                    22: ("conf.json", (fixture / "conf.json").read_bytes())}  # fmt: skip
    server.folder = "elsewhere"
    with pytest.raises(CloudfreeError, match=r"no 'diagonal_1' folder \(it has: elsewhere\)"):
        fetch("uncrtaints-mt-nll", url=_api(server), quiet=True)
    server.folder = "diagonal_1"
    done = fetch("uncrtaints-mt-nll", url=_api(server), quiet=True)
    assert done.record["model"] == "uncrtaints-mt" and done.record["config"]["n_head"] == 4
    model = load_weights(done.path)
    assert isinstance(model, UnCRtainTSMT) and model.contract.temporal
