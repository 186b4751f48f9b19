"""``cloudfree view ROOT [--predictions DIR] [--checkpoint SPEC ...] [--port 8000]``: the viewer.

FastAPI and uvicorn are the ``viewer`` extra (``pip install 'cloudfree[viewer]'``); they are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import ipaddress

from cloudfree.errors import CloudfreeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Host names accepted when bound to a loopback address (DNS-rebinding protection).
LOCAL_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``cloudfree view``."""
    p = sub.add_parser(
        "view",
        help="browse a dataset (and predictions) in a local web viewer",
        description=(
            "Serve a local web page to browse the patches of ROOT (a dataset folder or an index "
            "CSV): cloudy input, target, S1, cloud mask and every prediction side by side, a "
            "before/after slider, per-patch metrics, filters by split, season, scene, "
            "completeness and cloud cover, keyboard navigation (left/right or j/k) and a "
            "permalink per patch. Whole-scene GeoTIFFs in --predictions open as a zoomable view "
            "drawn from tiles. Only files of ROOT and of --predictions are ever served."
        ),
    )
    p.add_argument(
        "root",
        help="dataset folder (any layout 'cloudfree index' reads) or index CSV; with "
        "--predictions also a folder of whole scenes (the inputs of 'cloudfree predict'); or "
        "a series folder (s2/<YYYY-MM-DD>.tif ...): its dates as a strip with their cloud "
        "cover, beside the composites of --predictions ('cloudfree composite' outputs)",
    )
    p.add_argument(
        "--predictions",
        default=None,
        help="folder with one subfolder per method holding GeoTIFFs named by patch id "
        "(ROIs1970_fall_136_p100.tif) or like the patch's s2_cloudy file, and optionally the "
        "per_patch.csv of 'cloudfree evaluate'; other GeoTIFFs open as whole scenes",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="CKPT_OR_METHOD",
        help="also show this method's predictions, made live as each patch is opened: a "
        "weights name (e.g. dsen2cr-sar-carl, hybrid-sar), a .safetensors file, a checkpoint "
        "or run folder, or a baseline (mask-fill, ...); repeatable",
    )
    p.add_argument("--device", default="auto", help="where --checkpoint models run (auto, cpu)")
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine only; the viewer has no "
        "authentication, so think twice before binding 0.0.0.0)",
    )
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port 1-65535 (default {DEFAULT_PORT})"
    )
    p.set_defaults(func=run)


def _port(value: str) -> int:
    """argparse type of ``--port``: a TCP port number."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return port


def check_listen(host: str, port: int) -> None:
    """Raise :class:`CloudfreeError` unless ``host:port`` can be bound now (before the
    catalog and any model are loaded, and instead of the server's traceback)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise CloudfreeError(
            f"--host {host}: not an address of this machine ({e.strerror}); use 127.0.0.1"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As uvicorn binds: a port in TIME_WAIT from an earlier viewer is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            raise CloudfreeError(
                f"cannot listen on {host}:{port}: {e.strerror}; choose another --port "
                "(another program, or another viewer, may hold this one) or --host"
            ) from None


def run(args: argparse.Namespace) -> int:
    """Build the app and serve it until interrupted."""
    try:
        import uvicorn
    except ImportError as e:
        raise CloudfreeError(
            "the viewer needs FastAPI and uvicorn: pip install 'cloudfree[viewer]'"
        ) from e
    from cloudfree.viewer.app import create_app
    from cloudfree.viewer.series import is_series

    check_listen(args.host, args.port)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    hosts = LOCAL_NAMES if loopback else None
    if is_series(args.root):
        from cloudfree.viewer.series_app import create_series_app

        if args.checkpoint:
            raise CloudfreeError(
                f"{args.root} is a series folder: its page shows the dates and the composites "
                "in --predictions; make them with 'cloudfree composite' (live --checkpoint "
                "methods are for dataset patches)"
            )
        app = create_series_app(args.root, args.predictions, allowed_hosts=hosts)
        n = len(app.state.series.dates)
        print(f"cloudfree viewer: a series of {n} dates; open http://{args.host}:{args.port}/ "
              "(Ctrl+C stops)")  # fmt: skip
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    app = create_app(
        args.root,
        predictions=args.predictions,
        allowed_hosts=hosts,
        checkpoints=args.checkpoint,
        device=args.device,
    )
    n = len(app.state.catalog.rows)
    print(f"cloudfree viewer: {n} patches; open http://{args.host}:{args.port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
