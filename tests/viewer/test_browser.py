"""End-to-end: the viewer page in headless Chromium (Debian's ``chromium``, driven by Playwright).

Needs the system Chromium at /usr/bin/chromium (apt package ``chromium``) and the Python
packages ``playwright``, ``fastapi``, ``uvicorn``; skipped with the reason when one is missing.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytest.importorskip("fastapi", reason="the viewer extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the viewer extra (uvicorn) is not installed")
pytest.importorskip(
    "playwright.sync_api",
    reason="playwright (Python package) is not installed: pip install playwright",
)
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt install chromium)", allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from cloudfree.viewer.app import create_app  # noqa: E402

TIMEOUT_MS = 15_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(root: Path, predictions: Path | None = None) -> Iterator[str]:
    """Run the viewer with uvicorn in a background thread; yield its base URL."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(
        create_app(root, predictions), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(world) -> Iterator[str]:  # noqa: ANN001
    with serve(world.root, world.predictions) as url:
        yield url


@pytest.fixture
def page(browser) -> Iterator[Page]:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ctx.close()


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def _wait_images(page: Page, selector: str, n: int) -> None:
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];
             return imgs.length >= n && imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, n],
    )


def _title(page: Page) -> str:
    return page.inner_text("#patch-title")


def test_page_loads_and_images_render(page: Page, site: str, world) -> None:  # noqa: ANN001
    pid = world.pred_ids[0]
    _open(page, f"{site}/#patch={pid}")
    assert page.locator("#patch-list li").count() == len(world.ids)
    assert _title(page) == pid
    # cloudy, target, s1, mask, prediction, error
    _wait_images(page, "#panels .panel img", 6)
    for layer in ("cloudy", "target", "s1", "mask", "pred:good", "error:good"):
        px = _pixels(page.locator(f'.panel[data-layer="{layer}"] .frame').screenshot())
        assert px.std() > 3, f"panel {layer} looks blank/uniform"
    assert "psnr" in page.inner_text("#metrics") and "31.5" in page.inner_text("#metrics")


def test_broken_file_shows_an_error_in_its_panel_only(page: Page, site: str, world) -> None:  # noqa: ANN001
    _open(page, f"{site}/#patch={world.broken_id}")
    err = page.locator('.panel[data-layer="target"] .error')
    err.wait_for()
    assert "422" in err.inner_text()
    _wait_images(page, '.panel[data-layer="cloudy"] img', 1)
    link = world.link_id
    _open(page, f"{site}/#patch={link}")
    assert "403" in page.locator('.panel[data-layer="s1"] .error').inner_text()


def test_filter_changes_the_list(page: Page, site: str, world) -> None:  # noqa: ANN001
    from cloudfree.viewer.catalog import Catalog

    _open(page, site)
    rows = Catalog(world.root).rows
    split = rows[-1].split
    page.select_option("#f-split", split)
    expected = [r.id for r in rows if r.split == split]
    page.wait_for_function(
        "n => document.querySelectorAll('#patch-list li').length === n", arg=len(expected)
    )
    assert page.locator("#patch-list li").all_inner_texts() != []
    got = [li.get_attribute("data-id") for li in page.locator("#patch-list li").all()]
    assert got == expected
    assert f"split={split}" in page.evaluate("location.hash")
    page.select_option("#f-completeness", "no_s1")
    page.wait_for_function("() => document.querySelectorAll('#patch-list li').length === 0")


def test_slider_moves_the_split(page: Page, site: str, world) -> None:  # noqa: ANN001
    _open(page, f"{site}/#patch={world.pred_ids[0]}")
    _wait_images(page, "#compare-box img", 2)
    box = page.locator("#compare-box")
    page.locator("#slider").fill("10")
    left = _pixels(box.screenshot())
    page.locator("#slider").fill("90")
    right = _pixels(box.screenshot())
    assert left.std() > 3
    diff = np.abs(left - right).sum(axis=2) > 0
    # only the columns between 10 % and 90 % may change: cloudy input vs prediction there
    cols = np.flatnonzero(diff.any(axis=0))
    assert cols.size > 100
    w = diff.shape[1]
    assert cols.min() >= int(0.1 * w) - 3 and cols.max() <= int(0.9 * w) + 3


def test_keyboard_navigation_and_permalink(page: Page, site: str, world) -> None:  # noqa: ANN001
    _open(page, f"{site}/#patch={world.ids[0]}")
    assert _title(page) == world.ids[0]
    page.keyboard.press("j")
    page.wait_for_function("id => document.getElementById('patch-title').textContent === id",
                           arg=world.ids[1])  # fmt: skip
    page.keyboard.press("ArrowRight")
    page.wait_for_function("id => document.getElementById('patch-title').textContent === id",
                           arg=world.ids[2])  # fmt: skip
    page.keyboard.press("k")
    page.wait_for_function("id => document.getElementById('patch-title').textContent === id",
                           arg=world.ids[1])  # fmt: skip
    link = page.get_attribute("#permalink", "href")
    assert f"patch={world.ids[1]}" in link
    # the permalink opens the same patch in a fresh page, with its stretch settings
    page.select_option("#c-stretch", "percentile")
    link = page.get_attribute("#permalink", "href")
    fresh = page.context.new_page()
    _open(fresh, f"{site}/{link}")
    assert _title(fresh) == world.ids[1]
    assert fresh.input_value("#c-stretch") == "percentile"


def test_scene_opens_as_a_tiled_zoomable_view(page: Page, site: str) -> None:
    _open(page, site)
    page.locator("#scene-list li").first.click()
    page.wait_for_selector("#scene-view:not([hidden])")
    canvas = page.locator("#scene-canvas")
    page.wait_for_function(
        """() => { const c = document.getElementById('scene-canvas');
             const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;
             return d[0] + d[1] + d[2] !== 0x20 + 0x25 + 0x2a; }"""
    )
    before = _pixels(canvas.screenshot())
    assert before.std() > 3
    page.click("#zoom-in")
    page.wait_for_timeout(300)
    page.wait_for_load_state("networkidle")
    after = _pixels(canvas.screenshot())
    assert np.abs(after - before).mean() > 1


def test_a_scene_prediction_beside_its_input_and_under_its_mask(
    page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from .test_scenes import make_scenes

    made = make_scenes(tmp_path_factory.mktemp("browser_scenes"))
    with serve(made["inputs"], made["preds"]) as url:
        _open(page, url)
        page.locator("#scene-list li", has_text="a_cloudfree.tif").click()
        page.wait_for_selector("#scene-split-box:not([hidden])")
        page.wait_for_selector("#scene-mask-box:not([hidden])")
        page.wait_for_load_state("networkidle")
        canvas = page.locator("#scene-canvas")
        split = _pixels(canvas.screenshot())
        page.fill("#scene-split", "100")  # the input everywhere
        page.dispatch_event("#scene-split", "input")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(200)
        only_input = _pixels(canvas.screenshot())
        assert np.abs(only_input - split).mean() > 0.5
        page.check("#scene-mask")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(200)
        masked = _pixels(canvas.screenshot())
        assert np.abs(masked - only_input).mean() > 0.5


def test_real_sen12mscr_patches(page: Page, sen12mscr_root: Path) -> None:
    with serve(sen12mscr_root) as url:
        _open(page, url)
        assert page.locator("#patch-list li").count() > 20
        # the complete triplet: cloudy, target, S1 and mask all drawn
        page.select_option("#f-completeness", "triplet")
        page.wait_for_function("() => document.querySelectorAll('#patch-list li').length === 1")
        page.locator("#patch-list li").first.click()
        _wait_images(page, "#panels .panel img", 4)
        for layer in ("cloudy", "target", "s1", "mask"):
            px = _pixels(page.locator(f'.panel[data-layer="{layer}"] .frame').screenshot())
            assert px.std() > 3, layer
