"""What the connectors' local fakes share: a real aiohttp server on 127.0.0.1, request counts,
and injected answers (an error, a 5xx, a 429 with Retry-After) before the normal ones.

For tests and `kpi demo` only: a connector never imports its `fake.py` or this module.

Each fake answers like its real service: the same paths, JSON field names and nesting, headers,
pagination and error bodies (copied from the services' public API documentation).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


class BackgroundServer:
    """Serve an aiohttp app on 127.0.0.1 in a thread: `with BackgroundServer(app) as url: ...`."""

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self.app = app
        self.port = port
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self.url

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str]
    path: str | None  # only requests whose path contains this; None: any request


@dataclass
class FakeService:
    """Base of the fakes: subclasses add routes in `routes()` and keep their data as fields."""

    hits: Counter[str] = field(default_factory=Counter)
    requests: list[web.Request] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    url: str = ""

    def inject(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with this instead of the normal answer."""
        for _ in range(times):
            self.injected.append(Injected(status, body, dict(headers or {}), path))

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.hits[request.path] += 1
            self.requests.append(request)
            for item in self.injected:
                if item.path is None or item.path in request.path:
                    self.injected.remove(item)
                    return respond(item.status, item.body, item.headers)
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.routes(app)
        return app

    @contextmanager
    def serve(self) -> Iterator[str]:
        with BackgroundServer(self.app()) as url:
            self.url = url
            yield url

    def calls(self, path_part: str = "") -> int:
        return sum(n for p, n in self.hits.items() if path_part in p)


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    if isinstance(body, bytes):  # as it is, in the charset `headers`' Content-Type names
        return web.Response(status=status, body=body, headers=headers)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers, content_type="text/html")
    return web.Response(
        status=status, text=json.dumps(body), headers=headers, content_type="application/json"
    )


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    for prefix in ("Bearer ", "token "):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return None


def google_service_account(token_uri: str, email: str, project_id: str) -> dict[str, Any]:
    """A Google service account JSON key as the Cloud console downloads it, with a fresh
    2048-bit RSA key and its token endpoint at `token_uri` (a local fake's)."""
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": "109876543210987654321",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }


def google_public_key(info: dict[str, Any]) -> str:
    """The PEM public key of a service account key: what Google keeps to check signatures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
