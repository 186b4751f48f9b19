"""Download, verify and install named weights into the cache (:mod:`cloudfree.weights.cache`).

``fetch`` downloads with gdown (the optional extra ``cloudfree[download]``), which gets past
Google Drive's confirmation page, shows a progress bar, retries a dropped connection from
where it stopped and, when a run is interrupted, resumes the kept ``.part`` file on the next
run. ``import_file`` installs a file the user downloaded themselves. Both then go through one
path: the file is checked (a web page instead of weights, its size and SHA-256 where the
registry knows them, its format, and the exact layer shapes of the model the entry names),
converted to safetensors if it is a Keras checkpoint, written under its final name atomically,
and only then recorded. A file that fails a check is deleted from the staging folder, so the
next run downloads it afresh instead of resuming onto bad bytes.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cloudfree.config import model_family
from cloudfree.errors import CloudfreeError, DataError
from cloudfree.weights import cache
from cloudfree.weights.registry import WeightsEntry, get_weights, list_weights

#: HDF5's format signature; it sits at offset 0 or after a user block of 512 * 2**k bytes.
_HDF5_SIGNATURE: Final[bytes] = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS: Final[tuple[int, ...]] = (0, 512, 1024, 2048, 4096)
#: Names of user imports: they become file names in the cache.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: How close (difflib ratio) a new name may come to a registry name before it is taken as a typo.
_TYPO_RATIO: Final[float] = 0.9
_INSTALL_GDOWN = "downloading weights needs gdown: pip install 'cloudfree[download]'"


@dataclass(frozen=True)
class Installed:
    """What :func:`fetch` / :func:`import_file` put in the cache.

    Attributes:
        name: the entry's name.
        path: the safetensors file (``--checkpoint NAME`` loads it).
        record: its cache record (source, checksums of the download and of the file, date).
        fresh: False when the entry was already cached and nothing was done.
    """

    name: str
    path: Path
    record: dict[str, Any]
    fresh: bool = True


def sniff_format(path: Path) -> str:
    """``"keras-hdf5"``, ``"safetensors"``, ``"uncrtaints-pth"`` (a ``torch.save`` file) or
    ``"html"`` from a file's first bytes.

    Raises:
        DataError: none of these (with what the file starts with).
    """
    with open(path, "rb") as f:
        head = f.read(8192)
    if any(head[o : o + 8] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS):
        return "keras-hdf5"
    if head[:4] == b"PK\x03\x04" or head[:2] in (b"\x80\x02", b"\x80\x04"):
        return "uncrtaints-pth"  # a torch.save file (zip, or a legacy pickle): UnCRtainTS's
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 8 + header_len <= path.stat().st_size:
            return "safetensors"
    text = head.lstrip()[:512].lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "html"
    raise DataError(
        path,
        f"is neither a Keras HDF5, a PyTorch nor a safetensors file (it starts with {head[:16]!r})",
        "a Keras .hdf5 checkpoint of DSen2-CR, an UnCRtainTS model.pth.tar, or a .safetensors "
        "file written by cloudfree",
    )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _structure(path: Path, fmt: str, conf: Path | None = None) -> tuple[str, dict[str, Any]]:
    """``(model name, config)`` a weights file holds, from its layer shapes / metadata (an
    UnCRtainTS checkpoint: from its ``conf``, every tensor checked against it)."""
    if fmt == "uncrtaints-pth":
        from cloudfree.models.uncrtaints_import import load_upstream

        if conf is None:
            raise DataError(
                path,
                "is a PyTorch checkpoint: its configuration is in the conf.json beside it",
                "--conf conf.json (cloudfree weights import FILE --conf conf.json --name NAME)",
            )
        model = load_upstream(path, conf)
        return model.registry_name, model.config.to_dict()
    if fmt == "keras-hdf5":
        from dataclasses import asdict

        from cloudfree.models.keras_import import read_keras_layout

        config = read_keras_layout(path).config
        return config.name, asdict(config)
    import json

    from cloudfree.models.weights import CONFIG_KEY, MODEL_KEY, read_metadata

    meta = read_metadata(path)
    if MODEL_KEY not in meta or CONFIG_KEY not in meta:
        raise DataError(
            path,
            "is a safetensors file without cloudfree's model metadata",
            "a file written by cloudfree (training checkpoints, save_weights, convert-keras)",
        )
    return meta[MODEL_KEY], json.loads(meta[CONFIG_KEY])


def _describe(model: str, config: dict[str, Any]) -> str:
    keys = ("include_sar", "num_layers", "feature_size")
    shown = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
    return f"{model} ({shown})" if shown else model


def verify(path: Path, entry: WeightsEntry | None, conf: Path | None = None) -> dict[str, Any]:
    """Check a downloaded / given file against ``entry`` (or only its own structure if None);
    ``conf``: the ``conf.json`` of an UnCRtainTS checkpoint.

    Returns:
        ``{"format", "model", "config", "download_sha256", "download_bytes"}``.

    Raises:
        DataError: a web page, a wrong size or SHA-256, an unreadable file, or weights of
            another model or size than ``entry`` says (naming both).
    """
    fmt = sniff_format(path)
    if fmt == "html":
        raise DataError(
            path,
            "is a web page, not weights: the server answered with HTML (Google Drive does so "
            "when a file's daily download quota is exhausted or it asks to confirm)",
            "the weights file itself; try again later, or open the link in a browser, "
            "download the file and run: cloudfree weights import FILE --name NAME",
        )
    size = path.stat().st_size
    digest = sha256_of(path)
    if entry is not None and entry.size_bytes is not None and size != entry.size_bytes:
        raise DataError(
            path,
            f"has {size} bytes where {entry.name!r} has {entry.size_bytes} (an incomplete or "
            "different file)",
            "the registry's file; fetch again",
        )
    if entry is not None and entry.sha256 is not None and digest != entry.sha256:
        raise DataError(
            path,
            f"has SHA-256 {digest} where {entry.name!r} has {entry.sha256} (a corrupt or "
            "different file)",
            "the registry's file; fetch again",
        )
    # Either format passes for an entry (a Keras file converted by hand with convert-keras is
    # the same weights): what counts is the exact model below.
    model, config = _structure(path, fmt, conf)
    if (
        entry is not None
        and entry.config
        and (model != entry.model or any(config.get(k) != v for k, v in entry.config.items()))
    ):
        raise DataError(
            path,
            f"holds {_describe(model, config)}",
            f"{_describe(entry.model, dict(entry.config))} for {entry.name!r}",
        )
    return {
        "format": fmt,
        "model": model,
        "config": config,
        "download_sha256": digest,
        "download_bytes": size,
        **({"conf": str(conf)} if fmt == "uncrtaints-pth" else {}),
    }


def _install(
    name: str, src: Path, checked: dict[str, Any], source: str, move: bool, **extra: Any
) -> Installed:
    """Put a verified file under the entry's final name (converting Keras), then record it."""
    from cloudfree import __version__
    from cloudfree.io import atomic_path

    final = cache.weights_path(name)
    # The new weights are made under a temporary name beside the old ones and swapped in only
    # once complete and loadable: a failed conversion (or a file that does not fit its model)
    # leaves the entry it was to replace as it was.
    with atomic_path(final) as staged:
        if checked["format"] == "keras-hdf5":
            from cloudfree.models.keras_import import convert_keras

            convert_keras(src, staged, include_sar=checked["config"]["include_sar"])
        elif checked["format"] == "uncrtaints-pth":
            from cloudfree.models.uncrtaints_import import convert_uncrtaints

            convert_uncrtaints(src, checked["conf"], staged)
        else:
            from cloudfree.models.weights import load_weights

            load_weights(src)  # all tensors must fit the model the file names
            if move:
                os.replace(src, staged)
            else:
                shutil.copyfile(src, staged)
        cache.remove_record(name)  # the old record goes just before its weights are replaced
    if move:
        src.unlink(missing_ok=True)
    record = {
        "name": name,
        "model": checked["model"],
        "config": checked["config"],
        "source": source,
        "format": checked["format"],
        "download_sha256": checked["download_sha256"],
        "download_bytes": checked["download_bytes"],
        # A safetensors file is installed byte for byte: its checksum is the download's.
        "sha256": sha256_of(final)
        if checked["format"] != "safetensors"
        else checked["download_sha256"],
        "size_bytes": final.stat().st_size,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cloudfree_version": __version__,
        **extra,
    }
    cache.write_record(name, record)
    return Installed(name=name, path=final, record=record)


def _downloadable(name: str) -> WeightsEntry:
    try:
        entry = get_weights(name)
    except KeyError as e:
        raise CloudfreeError(str(e.args[0])) from None
    if entry.bundled or entry.local:
        where = "ships with cloudfree" if entry.bundled else "is one you imported"
        raise CloudfreeError(f"{name!r} {where}: there is nothing to download")
    return entry


def fetch(
    name: str,
    url: str | None = None,
    force: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    quiet: bool = False,
) -> Installed:
    """Download the registry entry ``name`` into the cache, verify it and convert it once.

    Args:
        name: a downloadable entry of :data:`cloudfree.weights.WEIGHTS`.
        url: download from this URL instead of the entry's source (a mirror; for a pCloud
            entry, the base URL of a pCloud API); the file is checked exactly as the original
            would be.
        force: download again even if the entry is cached.
        retries: reconnections after a dropped connection within this run (each resumes
            where the bytes stopped).
        timeout: seconds to wait for the server to connect or send the next bytes.
        quiet: no progress bar.

    Returns:
        What was installed (``fresh=False`` if it was cached already).

    Raises:
        CloudfreeError: unknown name, a failed download (the bytes received are kept and the
            same command resumes), or a file that fails verification (deleted; the error
            says what was wrong).
        ImportError: gdown is not installed (``pip install 'cloudfree[download]'``).
    """
    entry = _downloadable(name)
    record = cache.read_record(name)
    if record is not None and not force:
        return Installed(name=name, path=cache.weights_path(name), record=record, fresh=False)
    if entry.format == "uncrtaints-pth":
        return _fetch_pcloud(entry, url, force, retries, timeout)
    import importlib.util

    if entry.format == "keras-hdf5" and importlib.util.find_spec("h5py") is None:
        # Checked before ~76 MB are downloaded, not after.
        raise ImportError(f"converting {name!r} (a Keras file) needs h5py: {_INSTALL_GDOWN}")
    try:
        import gdown
        import requests
        from gdown.exceptions import DownloadError, FileURLRetrievalError
    except ImportError as e:
        raise ImportError(_INSTALL_GDOWN) from e
    source = url or entry.source
    staging = cache.download_dir(name)
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / entry.filename
    if force:
        target.unlink(missing_ok=True)
    try:
        # resume=True: an earlier run's partial file is continued (a Range request), and a
        # complete download that was not installed yet is verified instead of fetched again.
        gdown.download(
            source,
            os.fspath(target),
            quiet=quiet,
            use_cookies=False,
            resume=True,
            retries=retries,
            timeout=timeout,
        )
    except (DownloadError, FileURLRetrievalError, requests.RequestException, OSError) as e:
        kept = [p.name for p in staging.iterdir()]
        note = (
            f" The bytes received so far are kept in {staging}; run the same command again to "
            "resume."
            if kept
            else ""
        )
        raise CloudfreeError(
            f"downloading {name!r} from {source} failed: {e}.{note} Without a working "
            f"connection: download it in a browser, then run: cloudfree weights import "
            f"{entry.filename} --name {name}"
        ) from e
    try:
        checked = verify(target, entry)
    except DataError:
        target.unlink(missing_ok=True)  # never resumed onto: the next run starts afresh
        raise
    return _install(name, target, checked, source=source, move=True)


def import_file(
    path: str | os.PathLike[str],
    name: str,
    force: bool = False,
    conf: str | os.PathLike[str] | None = None,
) -> Installed:
    """Install a weights file the user has (a download made by hand, their own training).

    ``name`` an entry of the registry: the file must be that entry's (the same checks as a
    fetch). Any other name adds an entry of the user's own, listed by ``weights list`` and
    accepted by ``--checkpoint NAME``; the file must hold a cloudfree model (a DSen2-CR Keras
    checkpoint, an UnCRtainTS ``model.pth.tar`` with its ``conf``, or a cloudfree safetensors
    file).

    Raises:
        CloudfreeError: a bundled entry's name, a name close to a registry entry's (a typo),
            a name that is not a valid file name, or one already imported (without ``force``).
        DataError: the file fails verification.
    """
    from cloudfree.inpaint.registry import BASELINES, SD_BASELINE

    src = Path(path).expanduser()
    if not src.is_file():
        if src.is_dir():
            raise DataError(
                src, "is a folder", "the weights file itself (e.g. FOLDER/model.safetensors, or "
                "the downloaded .hdf5 / model.pth.tar)",
            )  # fmt: skip
        raise DataError(src, "file does not exist", "a downloaded weights file")
    registered = {w.name: w for w in list_weights()}
    entry = registered.get(name)
    if entry is not None and entry.bundled:
        raise CloudfreeError(
            f"{name!r} is a bundled entry of cloudfree; import your file under another name"
        )
    if entry is not None and entry.local and not force:
        raise CloudfreeError(
            f"{name!r} is already imported ({entry.description}); choose another name or "
            "pass --force to replace it"
        )
    if entry is None:
        if name in BASELINES or name == SD_BASELINE or not _NAME.fullmatch(name):
            raise CloudfreeError(
                f"cannot import weights as {name!r}: names are lower case letters, digits, "
                "'.', '_' and '-' (at most 64), and not a baseline's name"
            )
        typo = [
            w for w in registered if difflib.SequenceMatcher(None, name, w).ratio() >= _TYPO_RATIO
        ]
        if typo:
            raise CloudfreeError(
                f"{name!r} is very close to the registry entry {typo[0]!r}: did you mean "
                f"--name {typo[0]}? (for weights of your own, pick a name further from it)"
            )
    conf_path = None if conf is None else Path(conf).expanduser()
    checked = verify(src, None if entry is None or entry.local else entry, conf_path)
    # The scaling a local entry shows is its model's (UnCRtainTS: reflectance).
    family = model_family(str(checked.get("model", "")))
    scaling = "reflectance" if family in ("uncrtaints", "uncrtaints-mt") else "dsen2cr"
    extra = {"local": True, "scaling": scaling} if entry is None or entry.local else {}
    return _install(name, src, checked, source=str(src.resolve()), move=False, **extra)


#: pCloud API hosts by the host of a public link (EU links are served by eapi).
_PCLOUD_API: Final[dict[str, str]] = {
    "u.pcloud.link": "https://eapi.pcloud.com",
    "e.pcloud.link": "https://eapi.pcloud.com",
}
_PCLOUD_FILES: Final[tuple[str, ...]] = ("model.pth.tar", "conf.json")


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - https or a mirror
        data = json.loads(r.read().decode("utf-8"))
    if not isinstance(data, dict) or data.get("result") != 0:
        raise CloudfreeError(f"pCloud answered {data!r} for {url}")
    return data


def _find_folder(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    if node.get("isfolder") and node.get("name") == name:
        return node
    for child in node.get("contents", ()):
        found = _find_folder(child, name)
        if found is not None:
            return found
    return None


def _folder_names(node: dict[str, Any]) -> set[str]:
    """Names of the folders below ``node`` that hold a checkpoint (what a user may import)."""
    names = (
        {str(node.get("name"))}
        if any(c.get("name") == _PCLOUD_FILES[0] for c in node.get("contents", ()))
        else set()
    )
    for child in node.get("contents", ()):
        if child.get("isfolder"):
            names |= _folder_names(child)
    return names


def _download(url: str, target: Path, retries: int, timeout: float) -> None:
    """``url`` to ``target`` through ``target.part``, resuming with HTTP Range after a drop."""
    import urllib.error
    import urllib.request

    part = target.with_name(target.name + ".part")
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                mode = "ab" if have and r.status == 206 else "wb"
                with open(part, mode) as f:
                    shutil.copyfileobj(r, f, 1 << 20)
            os.replace(part, target)
            return
        except (urllib.error.URLError, OSError) as e:
            if attempt == retries:
                raise CloudfreeError(
                    f"downloading {url} failed: {e}. The bytes received so far are kept in "
                    f"{part}; run the same command again to resume"
                ) from e


def _fetch_pcloud(
    entry: WeightsEntry, api: str | None, force: bool, retries: int, timeout: float
) -> Installed:
    """An UnCRtainTS checkpoint and its conf.json from the authors' public pCloud folder
    (pCloud's public API: ``showpublink`` lists the folder, ``getpublinkdownload`` gives each
    file's link), then verified and converted as ``import_file`` does."""
    from urllib.parse import parse_qs, urlencode, urlparse

    link = urlparse(entry.source)
    code = parse_qs(link.query).get("code", [""])[0]
    base = (api or _PCLOUD_API.get(link.netloc, "https://api.pcloud.com")).rstrip("/")
    staging = cache.download_dir(entry.name)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        tree = _get_json(f"{base}/showpublink?{urlencode({'code': code})}", timeout)
        folder = _find_folder(tree.get("metadata", {}), entry.filename)
        if folder is None:
            have = sorted(_folder_names(tree.get("metadata", {})))
            raise CloudfreeError(
                f"the pCloud folder has no {entry.filename!r} folder (it has: "
                f"{', '.join(have) or 'no folders'})"
            )
        files = {c.get("name"): c.get("fileid") for c in folder.get("contents", ())}
        paths = {}
        for fname in _PCLOUD_FILES:
            if files.get(fname) is None:
                raise CloudfreeError(f"the pCloud folder {entry.filename!r} has no {fname}")
            target = staging / fname
            if force:
                target.unlink(missing_ok=True)
            if not target.exists():
                q = urlencode({"code": code, "fileid": files[fname]})
                got = _get_json(f"{base}/getpublinkdownload?{q}", timeout)
                url = f"{urlparse(base).scheme}://{got['hosts'][0]}{got['path']}"
                _download(url, target, retries, timeout)
            paths[fname] = target
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise CloudfreeError(
            f"downloading {entry.name!r} from {entry.source} failed: {e}. Without a working "
            f"connection: download {entry.filename}/model.pth.tar and conf.json from that "
            f"folder in a browser, then run: cloudfree weights import model.pth.tar --conf "
            f"conf.json --name {entry.name}"
        ) from e
    try:
        checked = verify(paths["model.pth.tar"], entry, paths["conf.json"])
    except DataError:
        for p in paths.values():
            p.unlink(missing_ok=True)  # never resumed onto: the next run starts afresh
        raise
    done = _install(entry.name, paths["model.pth.tar"], checked, source=entry.source, move=True)
    paths["conf.json"].unlink(missing_ok=True)
    return done
