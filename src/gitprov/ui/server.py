"""``prov ui``: a read-only web application (Starlette, served by uvicorn) over the
repository's ledger and query index.

Security (docs/design/ui.md): loopback by default, and there the ``Host`` header must
name the loopback (no DNS rebinding); any other address needs the random token the
command prints (``?token=``, kept in a same-site cookie); only ``GET`` and ``HEAD``;
static files come from a fixed list; artifacts are looked up by key among a run's
artifacts, never by path; every page sets a content security policy that allows no
inline script and no other origin.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import MissingExtraError, ProvError, UsageError
from . import data
from .series import DEFAULT_POINTS, SeriesCache

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["STATIC", "build_app", "is_loopback", "serve"]

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
#: every file the interface serves, and its media type: nothing else is reachable
STATIC = {
    "app.js": "text/javascript", "app.css": "text/css",
    "vendor/uPlot.iife.min.js": "text/javascript", "vendor/uPlot.min.css": "text/css",
    "vendor/cytoscape.min.js": "text/javascript", "vendor/dagre.min.js": "text/javascript",
}
COOKIE = "prov_ui_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    """Is ``host`` (a name or address) the loopback interface?"""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cache-Control": "no-store", **(extra or {})}


def build_app(store: ProvStore, *, token: str | None = None, loopback: bool = True) -> Any:
    """The ASGI application over ``store``; ``token``: required of every request."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    lock = threading.Lock()  # the object database and the index are used from one thread at a time
    keep = store.git.prov_dir()
    cache = SeriesCache(keep_dir=None if keep is None else os.path.join(keep, "ui-cache"))

    def reply(payload: Any, status: int = 200) -> Response:
        body = json.dumps(codec.to_plain(payload), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        return Response(body, status, media_type="application/json", headers=_headers())

    def api(handler: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                with lock:
                    result = handler(request)
            except UsageError as exc:
                return reply({"error": str(exc)}, 404 if "no run" in str(exc) or "has no" in str(exc) else 400)
            except ProvError as exc:
                return reply({"error": str(exc)}, 500)
            except (ValueError, KeyError) as exc:
                return reply({"error": f"bad request: {exc}"}, 400)
            return result if isinstance(result, Response) else reply(result)

        return endpoint

    def arg(request: Request, name: str, default: str | None = None) -> str | None:
        return request.query_params.get(name, default)

    def number(request: Request, name: str, default: int) -> int:
        text = request.query_params.get(name)
        return default if text in (None, "") else int(text)

    def real(request: Request, name: str) -> float | None:
        text = request.query_params.get(name)
        return None if text in (None, "") else float(text)

    def names(request: Request, name: str) -> list[str] | None:
        text = request.query_params.get(name)
        return None if text is None else [k for k in text.split(",") if k]

    def the_run(request: Request) -> Any:
        from ..runs.reading import resolve_run_id
        from ..runs.run import Run

        return Run.load(store, resolve_run_id(store.ledger, request.path_params["run_id"]))

    def runs(request: Request) -> Any:
        return data.runs_page(store, arg(request, "where"), arg(request, "order"), number(request, "offset", 0),
                              number(request, "limit", 50), arg(request, "group") or None, names(request, "params"),
                              names(request, "metrics"))

    def run(request: Request) -> Any:
        return data.run_detail(store, the_run(request))

    def metric(request: Request) -> Any:
        run = the_run(request)
        key = arg(request, "key") or ""
        if key not in run.state.metrics:
            raise UsageError(f"run {run.id[:12]} has no metric {key!r}")
        x = arg(request, "x", "step")
        if x not in ("step", "time"):
            raise UsageError("x is step or time")
        points = min(max(number(request, "points", DEFAULT_POINTS), 3), 20_000)
        return cache.payload(store, run.id, key, points, x, real(request, "lo"), real(request, "hi"))

    def observations(request: Request) -> Any:
        return data.observations(the_run(request), arg(request, "key") or "")

    def artifact(request: Request) -> Any:
        run, key = the_run(request), arg(request, "key") or ""
        if arg(request, "preview"):
            return data.artifact_preview(store, run, key)
        content, media_type = data.artifact_content(store, run, key)
        inline = media_type in data.IMAGE_TYPES and not arg(request, "download")
        from ..runs.artifacts import safe_file_name

        disposition = "inline" if inline else f'attachment; filename="{safe_file_name(key)}"'
        return Response(content, media_type=media_type if inline else "application/octet-stream",
                        headers=_headers({"Content-Disposition": disposition}))

    def compare(request: Request) -> Any:
        return data.compare(store, names(request, "ids") or [])

    def diff(request: Request) -> Any:
        from ..runs.reading import resolve_run_id
        from ..runs.run import Run

        a, b = (Run.load(store, resolve_run_id(store.ledger, arg(request, k) or "")) for k in ("a", "b"))
        return data.code_diff(store, a, b)

    def lineage(request: Request) -> Any:
        depth = arg(request, "depth")
        return data.lineage_graph(store, arg(request, "node") or "", arg(request, "direction", "both"),
                                  int(depth) if depth else None)

    def commits(request: Request) -> Any:
        return data.commits_page(store, number(request, "limit", 50), arg(request, "rev") or None)

    def commit(request: Request) -> Any:
        return data.commit_page(store, arg(request, "rev") or "HEAD")

    def info(request: Request) -> Any:
        from .._version import __version__

        return {"version": __version__, "repository": os.path.basename(store.work_tree or store.git.git_dir or ""),
                "mode": "server"}

    def page(request: Request) -> Response:
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
            return Response(f.read(), media_type="text/html; charset=utf-8", headers=_headers())

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:  # a fixed list: no path from the request reaches the file system
            return Response("not found", 404, media_type="text/plain", headers=_headers())
        with open(os.path.join(STATIC_DIR, *name.split("/")), "rb") as f:
            body = f.read()
        return Response(body, media_type=STATIC[name], headers=_headers({"Cache-Control": "max-age=3600"}))

    routes = [
        Route("/", page), Route("/static/{name:path}", static),
        Route("/api/info", api(info)), Route("/api/runs", api(runs)), Route("/api/run/{run_id}", api(run)),
        Route("/api/run/{run_id}/metric", api(metric)), Route("/api/run/{run_id}/observations", api(observations)),
        Route("/api/run/{run_id}/artifact", api(artifact)), Route("/api/compare", api(compare)),
        Route("/api/diff", api(diff)), Route("/api/lineage", api(lineage)), Route("/api/commits", api(commits)),
        Route("/api/commit", api(commit)),
    ]
    inner = Starlette(routes=routes)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        refusal = _refuse(scope, token, loopback)
        if refusal is not None:
            status, text = refusal
            await Response(text, status, media_type="text/plain", headers=_headers())(scope, receive, send)
            return
        query = _query_token(scope)
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        if token is not None and query is not None and scope["path"] == "/":
            # the page's address carried the token: keep it in a cookie, and drop it from
            # the address bar (and the history) by sending the browser to the bare page
            await Response("", 303, headers=_headers({"Location": "/", "Set-Cookie": cookie}))(scope, receive, send)
            return
        if token is not None and query is not None:  # an API call with ?token=: keep it in a cookie too
            async def send_with_cookie(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                await send(message)

            await inner(scope, receive, send_with_cookie)
            return
        await inner(scope, receive, send)

    return app


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _query_token(scope: dict[str, Any]) -> str | None:
    from urllib.parse import parse_qs

    found = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return found[0] if found else None


def _refuse(scope: dict[str, Any], token: str | None, loopback: bool) -> tuple[int, str] | None:
    """Why this request is refused (status, text), or None."""
    if scope["method"] not in ("GET", "HEAD"):
        return 405, "the interface is read-only"
    if loopback:
        host = _header(scope, b"host")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not is_loopback(name):
            return 421, "this interface answers only to localhost"
    if token is not None:
        given = [_query_token(scope) or ""]
        given.append(_header(scope, b"x-prov-token"))
        for part in _header(scope, b"cookie").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE:
                given.append(value)
        if not any(g and hmac.compare_digest(g.encode(), token.encode()) for g in given):
            return 401, "this interface needs its token: open the address prov ui printed (?token=...)"
    return None


def _warm(store: ProvStore) -> None:
    """Load, before the address is shown, what any page's first request would load (the
    modules behind the API, the ledger's root tree and packs): the first page a user
    opens does not pay for it."""
    import contextlib

    from ..index import index_of, query, search  # noqa: F401
    from ..runs import reading, run, summary  # noqa: F401

    with contextlib.suppress(ProvError):  # the page that needs the ledger says what is wrong
        store.ledger.list_dir("runs")


def serve(store: ProvStore, host: str = "127.0.0.1", port: int = 8470, *, open_browser: bool = False,
          announce: Any = print) -> None:
    """Serve the interface until interrupted; a non-loopback ``host`` gets a token."""
    import secrets
    import socket

    try:
        import numpy  # noqa: F401  (series are decoded with it: loaded before the first chart asks)
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError("prov ui needs the ui extra: pip install 'git-prov[ui]'") from exc
    loopback = is_loopback(host)
    token = None if loopback else secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; pass --port N (0 picks a free port) "
                         "or another --host") from exc
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    app = build_app(store, token=token, loopback=loopback)
    _warm(store)
    from .._util.ui_address import forget_url, remember_url

    prov_dir = store.git.prov_dir() if loopback else None  # Run.url names a loopback interface only
    remember_url(prov_dir, f"http://{shown}:{bound}/")
    announce(f"prov ui: serving {os.path.basename(store.work_tree or '') or 'the repository'} read-only at {url}")
    if not loopback:
        announce("prov ui: reachable off this machine; anyone with the address above (token included) can read it")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        forget_url(prov_dir, f"http://{shown}:{bound}/")
        sock.close()

