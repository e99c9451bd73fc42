"""The demo page at `/`: plain HTML, CSS and JavaScript from static/, served as they are (no
build step). The page holds no secret: it asks its user for a token, so its files are open."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
# URL path -> file. Explicit routes rather than a directory: nothing else under static/ is
# served, and the auth middleware opens exactly these paths.
PAGE_FILES = {
    "/": "index.html",
    "/static/app.css": "app.css",
    "/static/app.js": "app.js",
    "/static/thumbhash.js": "thumbhash.js",
}
# Set here, not guessed from the system's MIME table, which differs between machines; module
# scripts need a JavaScript type.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
# Revalidated on every load (ETag, Last-Modified), so a new release shows at once.
REVALIDATE = {"Cache-Control": "no-cache"}


def add_page_routes(app: web.Application) -> None:
    for path, name in PAGE_FILES.items():
        app.router.add_get(path, page_file(STATIC_DIR / name))


def page_file(path: Path) -> web.Handler:
    headers = {**REVALIDATE, "Content-Type": CONTENT_TYPES[path.suffix]}

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers=headers)

    return serve
