"""A generic webhook receiver: `POST /hook?key=<token>` keeps the raw body and headers (what a
signature is computed over) and answers `{"received": true}`; a wrong key gets 403. Like a
catch hook (Zapier's, n8n's), it takes a GET as a hook too, with an empty body: a POST that a
redirect turned into a GET is received as a hook without its document."""

from __future__ import annotations

from aiohttp import web

from kpi_collector.destinations._fake import MessageService


class FakeReceiver(MessageService):
    """Read back `(raw body, headers)` of each request with `hooks`."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.hooks: list[tuple[bytes, dict[str, str]]] = []

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook?key={self.token}"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.token:
            return web.json_response({"error": "forbidden"}, status=403)
        self.hooks.append((await request.read(), dict(request.headers)))
        return web.json_response({"received": True})
