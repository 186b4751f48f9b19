"""Take the README's screenshot of ``cloudfree view`` (docs/viewer.png) in headless Chromium.

    .venv/bin/python scripts/screenshot_viewer.py [--root ../shared/data/sen12mscr]
        [--predictions DIR] [--patch ROIs2017_winter_112_p797] [--out docs/viewer.png]

Needs the viewer extra (fastapi, uvicorn), the ``playwright`` Python package and the system
Chromium (``apt install chromium``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "sen12mscr"))
    p.add_argument("--predictions", default=None)
    p.add_argument("--patch", default="ROIs2017_winter_112_p797", help="patch id to show")
    p.add_argument("--stretch", default="percentile", choices=("gain", "percentile"))
    p.add_argument("--out", default=str(REPO / "docs" / "viewer.png"))
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args(argv)

    import uvicorn
    from playwright.sync_api import sync_playwright

    from cloudfree.io import atomic_path
    from cloudfree.viewer.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(args.root, args.predictions), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("uvicorn did not start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/#patch={args.patch}&stretch={args.stretch}")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function(
                """() => { const f = [...document.querySelectorAll('#panels .frame')];
                   return f.length >= 4 && f.every((x) => x.querySelector('img, .error')); }"""
            )
            page.wait_for_load_state("networkidle")
            page.locator("#slider").fill("45")
            page.wait_for_timeout(300)
            png = page.screenshot(full_page=False)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    # 256 colours (dithered): about a third of the size, for a file kept in the repository
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(args.out) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
