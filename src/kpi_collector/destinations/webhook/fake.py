"""A generic webhook receiver: `POST /hook?key=<token>` keeps the raw body and headers (what a
signature is computed over) and answers `{"received": true}`; a wrong key gets 403. Like a
catch hook (Zapier's, n8n's), it takes a GET as a hook too, with an empty body: a POST that a
redirect turned into a GET is received as a hook without its document. With `then_redirect`
set (302 or 303), a POST is received and answered with that redirect to `/done` (a page that
answers `{"received": true}`), as a Post/Redirect/Get receiver (a Google Apps Script web app)
does after taking the document."""

from __future__ import annotations

from aiohttp import web

from kpi_collector.destinations._fake import MessageService


class FakeReceiver(MessageService):
    """Read back `(raw body, headers)` of each request with `hooks`."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.hooks: list[tuple[bytes, dict[str, str]]] = []
        self.then_redirect: int | None = None  # 302 or 303 after taking a POST

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook?key={self.token}"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/hook", self._hook)
        app.router.add_get("/done", self._done)

    async def _hook(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.token:
            return web.json_response({"error": "forbidden"}, status=403)
        self.hooks.append((await request.read(), dict(request.headers)))
        if self.then_redirect and request.method == "POST":
            return web.Response(status=self.then_redirect, headers={"Location": "/done"})
        return web.json_response({"received": True})

    async def _done(self, request: web.Request) -> web.Response:
        return web.json_response({"received": True})
