"""The viewer's page of a series (``cloudfree view SERIES_FOLDER [--predictions DIR]``).

Endpoints (all GET; dates and composites are named by their index, never by path):

- ``/``, ``/static/{series.js|style.css}``: the page (plain HTML/JS, no build step).
- ``/api/series``: the dates (day, file name, S1, mask file) and the composites found.
- ``/api/series/cover/{i}``: cloud cover of date ``i`` (:mod:`cloudfree.viewer.series`).
- ``/api/series/date/{i}.png``, ``/api/series/composite/{i}.png``: true colour overviews
  (``max_size``, default 512; the viewer's style query), ``/api/series/made/{i}.png``: how each
  pixel of composite ``i`` was made (:data:`~cloudfree.viewer.series.MADE_COLOURS`).

Errors are JSON ``{"detail": ...}``: 404 an unknown index or missing file, 422 a file that
cannot be read.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations at run time.
import os
from typing import Any

from cloudfree.viewer.app import STATIC_FILES, _static

#: Longest side of a drawn date or composite unless asked (``max_size``).
DEFAULT_SIDE = 512


def create_series_app(
    root: "str | os.PathLike[str]",
    predictions: "str | os.PathLike[str] | None" = None,
    *,
    allowed_hosts: "list[str] | None" = None,
) -> Any:
    """The viewer app of a series folder and the composites made of it.

    Raises:
        DataError: no dated GeoTIFF in ``root``, or ``predictions`` is not a folder.
    """
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.responses import JSONResponse, Response

    from cloudfree import render
    from cloudfree.errors import CloudfreeError, DataError
    from cloudfree.viewer.layers import Style, any_rgb, read_display
    from cloudfree.viewer.series import Series, made_rgb

    series = Series(root, predictions)
    app = FastAPI(title="cloudfree viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.series = series
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(IndexError)
    async def _unknown(request: Request, exc: IndexError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(CloudfreeError)
    async def _unreadable(request: Request, exc: CloudfreeError) -> JSONResponse:
        missing = isinstance(exc, DataError) and "does not exist" in str(exc)
        return JSONResponse({"detail": str(exc)}, status_code=404 if missing else 422)

    def png(rgb: Any) -> Response:
        return Response(render.to_png_bytes(rgb), media_type="image/png",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    def style(composite: str, stretch: str, gain: float) -> Style:
        try:
            return Style(composite, stretch, gain)
        except ValueError as e:
            raise HTTPException(400, str(e)) from e

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(_static("series.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ("series.js", "style.css"):
            raise IndexError(f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/api/series")
    def info() -> dict[str, Any]:
        return series.summary()

    @app.get("/api/series/cover/{i}")
    def cover(i: int) -> dict[str, Any]:
        value = series.cover(i)
        return {"index": i, "cover": None if value != value else value}  # NaN: no data

    @app.get("/api/series/made/{i}.png")
    def made_png(i: int, max_size: int = Query(DEFAULT_SIDE, ge=16, le=4096)) -> Response:
        c = series.composite(i)
        if c.made is None:
            raise IndexError(f"composite {c.name} has no {c.name}_made.tif beside it")
        arr, _ = read_display(c.made, max_size=max_size, categorical=True)
        return png(made_rgb(arr[0]))

    @app.get("/api/series/{kind}/{i}.png")
    def image_png(kind: str, i: int, composite: str = "true", stretch: str = "gain",
                  gain: float = render.DEFAULT_GAIN,
                  max_size: int = Query(DEFAULT_SIDE, ge=16, le=4096)) -> Response:  # fmt: skip
        """A date (``kind`` "date") or a composite ("composite"), drawn in the style asked."""
        if kind not in ("date", "composite"):
            raise IndexError(f"no image kind {kind!r}; expected date, composite or made")
        path = series.date(i).s2 if kind == "date" else series.composite(i).path
        arr, _ = read_display(path, max_size=max_size)
        return png(any_rgb(arr, style(composite, stretch, gain)))

    return app
