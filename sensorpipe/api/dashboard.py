"""The dashboard page at / and its static files.

The page (static/index.html, dashboard.js, dashboard.css; nothing inline, as the service's
Content-Security-Policy allows no inline script or style) reads the public API under
/api/v1 and its map settings from /dashboard/config.json. Leaflet and uPlot are vendored in
static/vendor (`make vendor`), so the page loads nothing from other servers except map tiles,
from the one tile server of `[map]` (PDOK's BRT-Achtergrondkaart by default; none with
`basemap = "none"`). All URLs in the page are relative, so the service may sit
under a path prefix behind a proxy.

/docs, the interactive API reference, is Swagger UI from the same vendored copy (FastAPI's
own /docs would load it from a CDN, so the app is made with docs_url=None, redoc_url=None).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from sensorpipe.api.context import context
from sensorpipe.api.guard import content_security_policy

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

# The page changes with the package; a browser asks again rather than keep a stale copy.
_NO_STALE = {"Cache-Control": "no-cache"}


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_NO_STALE)


@router.get("/dashboard/config.json", include_in_schema=False)
def dashboard_config(request: Request) -> JSONResponse:
    """The map's settings: the background map's name ("none": no background), its tile URL
    template (empty: none), attribution, zoom levels and the bounds outside which it has no
    tiles (null: anywhere)."""
    basemap = context(request).config.basemap()
    if basemap is None:
        body: dict[str, object] = {"basemap": "none", "tile_url": "", "tile_attribution": ""}
    else:
        body = {
            "basemap": basemap.name,
            "tile_url": basemap.tile_url,
            "tile_attribution": basemap.attribution,
            "min_zoom": basemap.min_zoom,
            "max_zoom": basemap.max_zoom,
            "bounds": basemap.bounds,
        }
    return JSONResponse(body, headers=_NO_STALE)


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI for /openapi.json, from static/vendor/swagger-ui: nothing from other hosts.
    Its one inline script (the page's settings) runs by a nonce of this answer's
    Content-Security-Policy; nothing else inline does."""
    root = request.scope.get("root_path", "").rstrip("/")
    vendor = f"{root}/static/vendor/swagger-ui"
    page = get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title}: API",
        swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
        swagger_css_url=f"{vendor}/swagger-ui.css",
        swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        # No badge that sends the specification to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    nonce = secrets.token_urlsafe(16)
    html = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
    csp = content_security_policy(context(request).config, script_nonce=nonce)
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})
