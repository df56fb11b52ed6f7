"""The studio's web server: Starlette routes, served by uvicorn on 127.0.0.1.

Why Starlette + uvicorn: both are small, widely used and well kept (Encode), with few
dependencies of their own (anyio; h11, click); Starlette gives routing, typed
responses and a threadpool for the blocking model calls, uvicorn a proper HTTP/1.1
server with a clean shutdown on Ctrl-C. The stdlib ``http.server`` would mean writing
that plumbing by hand; a framework such as Flask or FastAPI brings more than a local
tool needs.

Routes (every path the page names is relative to FOLDER or OUT; see
:func:`colorbatch_studio.files.safe_join`):

==========================  ===================================================
``GET /``                   the page (``assets/index.html``)
``GET /assets/NAME``        the page's script and style (a fixed list)
``GET /api/info``           folder, model, whether hints can be placed (and why not)
``GET /api/images``         one page of the grid (``?page=&per=``)
``GET /api/thumb?id=``      a cached thumbnail
``GET /api/image?id=``      size, hints, chroma, saved output of one image
``GET /api/before?id=``     the input's L* as gray, at display size
``GET /api/preview?id=``    colorized with its saved hints, at display size
``POST /api/state?id=``     new hints / chroma / reference: writes the sidecar, returns the preview
``POST /api/save?id=``      full resolution through the batch path, into OUT
``GET /files/in/PATH``      a file under FOLDER (``/files/out/PATH``: under OUT)
==========================  ===================================================

Refused paths answer 403, missing ones 404, bad requests 400 (a JSON ``error``).
Blocking work runs in Starlette's threadpool (sync handlers), one model call at a time.
"""
from __future__ import annotations

from importlib import resources

from colorbatch_studio.engine import Studio, StudioError
from colorbatch_studio.files import Refused, safe_join

ASSETS = {"studio.js": "text/javascript; charset=utf-8", "studio.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}


def _asset(name: str) -> str:
    return resources.files("colorbatch_studio").joinpath("assets", name).read_text(encoding="utf-8")


def build_app(studio: Studio):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from colorbatch.api import ColorbatchError

    def guarded(fn):
        def handler(request: Request):
            try:
                return fn(request)
            except Refused as exc:
                return JSONResponse({"error": f"refused: {exc}"}, status_code=403)
            except FileNotFoundError as exc:
                return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
            except (StudioError, ColorbatchError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        handler.__name__ = fn.__name__
        return handler

    def ident(request: Request) -> str:
        rel = request.query_params.get("id")
        if not rel:
            raise StudioError("id: expected the path of an image relative to the folder")
        safe_join(studio.folder, rel)  # refuse before anything else
        return rel

    def index(request):
        return HTMLResponse(_asset("index.html"), headers=NO_STORE)

    def asset(request):
        name = request.path_params["name"]
        if name not in ASSETS:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(_asset(name), media_type=ASSETS[name], headers=NO_STORE)

    @guarded
    def info(request):
        return JSONResponse(studio.info())

    @guarded
    def images(request):
        q = request.query_params
        if q.get("refresh"):
            studio.refresh()
        try:
            page, per = int(q.get("page", 0)), int(q.get("per", 48))
        except ValueError:
            raise StudioError("page and per are whole numbers") from None
        return JSONResponse(studio.page(page, per))

    @guarded
    def thumb(request):
        return Response(studio.thumbs.get(ident(request)), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

    @guarded
    def image(request):
        return JSONResponse(studio.describe(ident(request)))

    @guarded
    def before(request):
        return Response(studio.open(ident(request)).gray_png, media_type="image/png", headers=NO_STORE)

    @guarded
    def preview(request):
        data, seconds = studio.preview(ident(request))
        return Response(data, media_type="image/png", headers={**NO_STORE, "X-Studio-Seconds": f"{seconds:.3f}"})

    async def state(request):
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "expected a JSON body"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        def work(req):
            rel = ident(req)
            st = studio.parse_state(rel, body)
            side = studio.write_state(rel, st)
            data, seconds = studio.preview(rel, st)
            headers = {**NO_STORE, "X-Studio-Seconds": f"{seconds:.3f}",
                       "X-Studio-Sidecar": side.name if side is not None else "",
                       "X-Studio-Command": studio.batch_command()}
            return Response(data, media_type="image/png", headers=headers)

        return await run_in_threadpool(guarded(work), request)

    @guarded
    def save(request):
        return JSONResponse(studio.save(ident(request)))

    def files(root):
        @guarded
        def serve(request):
            path = safe_join(root, request.path_params["path"])
            if not path.is_file():
                raise FileNotFoundError(request.path_params["path"])
            return FileResponse(path, headers=NO_STORE)

        return serve

    routes = [
        Route("/", index),
        Route("/assets/{name}", asset),
        Route("/api/info", info),
        Route("/api/images", images),
        Route("/api/thumb", thumb),
        Route("/api/image", image),
        Route("/api/before", before),
        Route("/api/preview", preview),
        Route("/api/state", state, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/files/in/{path:path}", files(studio.folder)),
        Route("/files/out/{path:path}", files(studio.out)),
    ]
    return Starlette(routes=routes)


def bind(host: str, port: int):
    """A listening socket (port 0: a free one), so the URL is known before serving."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def url_of(sock) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def make_server(app, sock, quiet: bool = True):
    import uvicorn

    config = uvicorn.Config(app, log_level="warning" if quiet else "info", access_log=not quiet, lifespan="off",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def serve(app, sock, quiet: bool = True) -> None:
    """Serve until Ctrl-C / SIGTERM (uvicorn finishes open requests, then returns)."""
    server = make_server(app, sock, quiet)
    server.run(sockets=[sock])
