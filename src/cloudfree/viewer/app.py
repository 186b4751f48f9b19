"""The web viewer's API: a FastAPI app over a :class:`~cloudfree.viewer.catalog.Catalog`.

Endpoints (all GET; patches are named by row number or id, never by path):

- ``/``, ``/static/{app.js|style.css}``: the page (plain HTML/JS, no build step).
- ``/api/info``: counts, the filter choices (splits, seasons, scenes), methods, scenes.
- ``/api/patches?split=&season=&scene=&completeness=&cloud_min=&cloud_max=``: filtered list.
- ``/api/patch/{pid}``: one patch: its files, predictions, cloud fraction and metrics (a
  live method, ``view --checkpoint``, predicts the patch here; its failure is in ``errors``).
- ``/api/patch/{pid}/{layer}.png``: ``cloudy``, ``target``, ``s1``, ``mask``; and
  ``/api/patch/{pid}/pred/{method}.png``, ``/api/patch/{pid}/error/{method}.png``,
  ``/api/patch/{pid}/uncertainty/{method}.png`` (a live method's predicted standard deviation,
  mean over bands, black 0 to pale yellow 0.1 reflectance).
  Query: ``composite=true|false``, ``stretch=gain|percentile``, ``gain=2.5``, ``plo=2``,
  ``phi=98``, ``overlay=1`` (mask over the cloudy input).
- ``/api/scene/{sid}``: size, kind, tile pyramid and ``layers`` (its ``input`` and ``mask``,
  when known and readable) of a whole-scene GeoTIFF;
  ``/api/scene/{sid}/tile/{z}/{x}/{y}.png?layer=scene|input|mask``: one 256-pixel tile, a
  windowed decimated read (a mask: classes over transparency, to lay over the others).

Errors are JSON ``{"detail": ...}``: 404 unknown id or missing file, 403 a file outside the
allowed folders, 400 bad parameters, 422 a file that cannot be read (corrupt, truncated, wrong
bands). The page shows the message in the panel concerned; the rest keeps working.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at
# run time, and they name types imported inside create_app (fastapi itself is an optional extra).
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np

from cloudfree import render
from cloudfree.errors import CloudfreeError
from cloudfree.viewer.catalog import COMPLETENESS, Catalog, Forbidden, NotFound
from cloudfree.viewer.layers import (
    SceneStretch,
    Style,
    TileGrid,
    any_rgb,
    raster_size,
    read_display,
    tile_rgb,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi import FastAPI

#: The only static files served, by name (no path from the request reaches the file system).
STATIC_FILES: dict[str, str] = {
    "app.js": "application/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
    "series.js": "application/javascript",  # the page of a series (series_app.py)
    "series.html": "text/html",
}
PATCH_LAYERS: tuple[str, ...] = ("cloudy", "target", "s1", "mask", "inpainted")
#: Longest side at which patch layers are drawn (patches are 256; bigger files are decimated).
MAX_PATCH_SIDE: int = 1024
_KIND = {"cloudy": "s2_cloudy", "target": "s2", "s1": "s1"}


def _static(name: str) -> bytes:
    return resources.files("cloudfree.viewer").joinpath("static", name).read_bytes()


def create_app(
    root: str | os.PathLike[str],
    predictions: str | os.PathLike[str] | None = None,
    *,
    allowed_hosts: list[str] | None = None,
    checkpoints: "Sequence[str]" = (),
    device: str = "auto",
) -> "FastAPI":
    """The viewer app over a dataset folder or index CSV, with an optional predictions folder.

    ``checkpoints``: methods that predict each patch when it is shown (``view --checkpoint``:
    weights names, files, run folders, baselines), listed beside the predictions folder's, on
    ``device``.

    ``allowed_hosts``: accepted ``Host`` headers (None: any). ``cloudfree view`` on a loopback
    address accepts only local names, so a web page elsewhere cannot reach the viewer through
    DNS rebinding.

    Raises:
        DataError: the root holds no patches, or the predictions folder does not exist.
    """
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import JSONResponse, Response

    cat = Catalog(root, predictions, checkpoints=checkpoints, device=device)
    app = FastAPI(title="cloudfree viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catalog = cat
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(CloudfreeError)
    async def _cloudfree_error(request: Request, exc: CloudfreeError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError) -> JSONResponse:
        # a file the renderer cannot draw (wrong band count, sizes that differ)
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def png(rgb: np.ndarray) -> Response:
        return Response(
            render.to_png_bytes(rgb), media_type="image/png", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/", include_in_schema=False)
    def index_page() -> Response:
        return Response(_static("index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ("app.js", "style.css"):
            raise NotFound(f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        rows = cat.rows
        return {
            "root": str(cat.data_root),
            "patches": len(rows),
            "splits": sorted({r.split for r in rows}),
            "seasons": sorted({r.season for r in rows}),
            "scenes": sorted({f"{r.roi_season}_{r.scene}" for r in rows}),
            "completeness": list(COMPLETENESS),
            "methods": sorted(cat.methods),
            "scene_files": [
                {"id": s.id, "name": s.name, "method": s.method, "kind": s.kind}
                for s in cat.scenes.values()
            ],
        }

    @app.get("/api/patches")
    def patches(
        split: str = "",
        season: str = "",
        scene: str = "",
        completeness: str = "any",
        cloud_min: float = Query(0.0, ge=0.0, le=1.0),
        cloud_max: float = Query(1.0, ge=0.0, le=1.0),
    ) -> dict[str, Any]:
        try:
            sel = cat.select(split, season, scene, completeness, cloud_min, cloud_max)
        except ValueError as e:
            raise HTTPException(400, str(e)) from e
        return {"count": len(sel), "patches": [cat.summary(n) for n in sel]}

    @app.get("/api/patch/{pid}")
    def patch(pid: str) -> dict[str, Any]:
        n, row = cat.row(pid)
        out = cat.summary(n)
        out["cloud"] = cat.cloud_fraction(n) if row.s2_cloudy else None
        out["predictions"] = [m for m in sorted(cat.methods) if cat.methods[m].has(row)]
        out["metrics"] = {
            m: cat.methods[m].metrics[row.id]
            for m in sorted(cat.methods)
            if row.id in cat.methods[m].metrics
        }
        # Live methods with a variance: their predicted standard deviation is a layer too.
        out["uncertainty"] = [m for m in cat.uncertain_methods() if m in out["predictions"]]
        out["errors"] = {}
        for m in out["predictions"]:
            if cat.methods[m].runner is not None:  # live: predicted now, then cached
                try:
                    scores = cat.live_prediction(n, m)[1]
                except (CloudfreeError, ValueError) as e:  # the other methods still show
                    out["errors"][m] = str(e)
                    continue
                if scores is not None:
                    out["metrics"][m] = scores
        return out

    def _query_style(
        composite: str = "true",
        stretch: str = "gain",
        gain: float = render.DEFAULT_GAIN,
        plo: float = render.DEFAULT_PERCENTILES[0],
        phi: float = render.DEFAULT_PERCENTILES[1],
    ) -> Style:
        try:
            return Style(composite, stretch, gain, (plo, phi))
        except ValueError as e:
            raise HTTPException(400, str(e)) from e

    StyleQ = Annotated[Style, Depends(_query_style)]

    def predicted(pid: str, method: str) -> tuple[np.ndarray, Any]:
        """``(prediction for display, row)`` of a method's file or of a live method."""
        n, row = cat.row(pid)
        m = cat.method(method)
        if not m.has(row):
            raise NotFound(f"method {method!r} has no prediction for patch {row.id}")
        if m.runner is not None:
            return cat.live_prediction(n, method)[0], row
        return read_display(cat.checked(m.files[row.id]), max_size=MAX_PATCH_SIDE)[0], row

    @app.get("/api/patch/{pid}/pred/{method}.png")
    def prediction(pid: str, method: str, style: StyleQ) -> Response:
        return png(any_rgb(predicted(pid, method)[0], style))

    @app.get("/api/patch/{pid}/error/{method}.png")
    def error(pid: str, method: str) -> Response:
        pred, row = predicted(pid, method)
        target, _ = read_display(cat.file(row, "s2"), max_size=MAX_PATCH_SIDE)
        return png(render.error_map(pred, target))

    @app.get("/api/patch/{pid}/uncertainty/{method}.png")
    def uncertainty(pid: str, method: str) -> Response:
        n, _ = cat.row(pid)
        return png(render.uncertainty_map(cat.live_uncertainty(n, method)))

    @app.get("/api/patch/{pid}/{layer}.png")
    def layer(pid: str, layer: str, style: StyleQ, overlay: bool = False) -> Response:
        n, row = cat.row(pid)
        if layer not in PATCH_LAYERS:
            raise NotFound(f"no layer {layer!r}; expected one of {PATCH_LAYERS}")
        if layer == "mask":
            return png(render.mask_rgb(cat.mask(n, MAX_PATCH_SIDE)))
        if layer == "inpainted":
            # The hybrid chain's first two steps (cloudfree.inpaint, the hybrids' default
            # method) on this patch: what a hybrid model starts from.
            from cloudfree.inpaint import DEFAULT_METHOD, inpaint

            arr, _ = read_display(cat.file(row, "s2_cloudy"), max_size=MAX_PATCH_SIDE)
            filled = inpaint(
                np.nan_to_num(arr, nan=0.0), cat.mask(n, MAX_PATCH_SIDE), DEFAULT_METHOD
            )
            return png(any_rgb(filled, style))
        arr, _ = read_display(cat.file(row, _KIND[layer]), max_size=MAX_PATCH_SIDE)
        rgb = any_rgb(arr, style)
        if overlay and layer == "cloudy":
            mask = cat.mask(n, MAX_PATCH_SIDE)
            if mask.shape == rgb.shape[:2]:
                rgb = render.mask_overlay(rgb, mask)
        return png(rgb)

    def scene_layer(sid: str, layer: str) -> Path:
        """The file of a scene's layer: the scene itself, its input or its mask."""
        s = cat.scene(sid)
        if layer == "scene":
            return cat.checked(s.path)
        path = {"input": s.input, "mask": s.mask}.get(layer)
        if layer not in ("input", "mask"):
            raise HTTPException(400, f"layer must be scene, input or mask, got {layer!r}")
        if path is None:
            raise NotFound(f"scene {sid!r} has no {layer} (see /api/scene/{sid})")
        return cat.checked(path)  # inside ROOT or the predictions folder, else 403

    @app.get("/api/scene/{sid}")
    def scene(sid: str) -> dict[str, Any]:
        s = cat.scene(sid)
        h, w, count = raster_size(cat.checked(s.path))
        grid = TileGrid(h, w)
        layers = {}
        for name, path in (("input", s.input), ("mask", s.mask)):
            # Shown only when the viewer may read it and it is on the scene's grid.
            if path is not None and cat.allowed(path) and raster_size(path)[:2] == (h, w):
                layers[name] = path.name
        return {
            "id": s.id,
            "name": s.name,
            "method": s.method,
            "kind": s.kind,
            "height": h,
            "width": w,
            "count": count,
            "tile": 256,
            "max_zoom": grid.max_zoom,
            "layers": layers,
        }

    @app.get("/api/scene/{sid}/tile/{z}/{x}/{y}.png")
    def tile(sid: str, z: int, x: int, y: int, style: StyleQ, layer: str = "scene") -> Response:
        """One tile of the scene (``layer=scene``), of its input (``input``, drawn as the
        scene is) or of its mask (``mask``: cloud and shadow over transparency, to lay over
        the other two)."""
        path = scene_layer(sid, layer)
        h, w, count = raster_size(path)
        try:
            window, out_size = TileGrid(h, w).window(z, x, y)
        except ValueError as e:
            raise NotFound(str(e)) from e
        masky = layer == "mask" or cat.scene(sid).kind == "mask"
        arr, _ = read_display(path, window=window, out_size=out_size, categorical=masky)
        if layer == "mask":
            return png(render.mask_rgba(arr[0].astype(np.uint8)))
        fixed = None
        if style.stretch == "percentile" and count not in (1, 2):

            def overview() -> SceneStretch:
                ov, _ = read_display(path, max_size=1024)
                return SceneStretch.from_overview(ov, style)

            fixed = cat.overviews.get((sid, layer, style.composite, style.p), overview)
        return png(tile_rgb(arr, style, fixed))

    return app
