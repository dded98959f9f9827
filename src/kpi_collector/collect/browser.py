"""Pages as a browser shows them: headless Chromium driven by Playwright, for `render: true`.

One `Browser` per run, started on the first page asked of it and shared by every source that
renders; each source gets its own browser context (cookies never cross sources) and at most
`concurrency` pages load at once. Chromium is Debian's `/usr/bin/chromium` (or `KPI_CHROMIUM`);
Playwright's own browser downloads are never used. The browser is closed when the run ends,
on success, failure, timeout, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from kpi_collector.collect.http import (
    UNDEFINED_STATUS,
    is_unknown_host,
    retry_after_seconds,
    unknown_host_error,
    url_without_query,
)
from kpi_collector.collect.retry import wait_text
from kpi_collector.errors import ExtractError, HttpError, LoginError, SourceError
from kpi_collector.secrets import encodings, redact, redact_cut, reveal

if TYPE_CHECKING:
    from kpi_collector.collect.http import PlainAuth, PlainLoginForm

#: where Debian and Ubuntu install Chromium (`apt-get install chromium`)
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: headless, and no calls home: without the background-networking flags Chromium opens
#: connections to the outside (component updates, sync) that a locked-down machine refuses
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)
INSTALL_PLAYWRIGHT = (
    "`render: true` needs Playwright, which is not installed: pip install 'kpi-collector[browser]'"
)


#: True in a task that holds one of the browser's page slots (see `Browser.slot`)
_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_slot", default=False)


class BrowserMissing(SourceError):
    """Playwright or Chromium is not installed; the message says how to install it."""


class BrowserEnded(SourceError):
    """Chromium ended (it crashed, or the OOM killer or a person killed it) while a page
    rendered: transient, the next render starts a new one."""

    transient = True


def chromium_path() -> str:
    """The Chromium binary: `KPI_CHROMIUM`, else /usr/bin/chromium, else `chromium` or
    `chromium-browser` on the PATH. BrowserMissing (one line saying how to install it) when
    there is none."""
    given = os.environ.get("KPI_CHROMIUM")
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given
        raise BrowserMissing(
            f"KPI_CHROMIUM={given} is not an executable file; point it at a Chromium binary"
        )
    if os.path.isfile(DEFAULT_CHROMIUM):
        return DEFAULT_CHROMIUM
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        f"`render: true` needs Chromium, and {DEFAULT_CHROMIUM} is missing: install it "
        "(Debian/Ubuntu: apt-get install chromium) or set KPI_CHROMIUM to a Chromium binary"
    )


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page after its scripts ran: the DOM serialized as HTML (`html`), the final `url`
    (after redirects and script navigation), its `title`, the HTTP `status` of the
    document (0 when the browser gave none) and its `Content-Language` header (`language`,
    None when it had none: the language of text nothing in the page names)."""

    html: str
    url: str
    title: str
    status: int
    language: str | None = None


class Browser:
    """The run's headless Chromium, launched lazily on the first `render` and shared.

    `concurrency`: at most that many pages load at once (`defaults.render_concurrency`).
    `close()` ends Chromium and the Playwright driver; call it when the run ends (the
    engine does, in a `finally`). Under a default SIGTERM disposition, a SIGTERM while
    Chromium runs closes it first, then ends the process as SIGTERM does.
    """

    def __init__(self, *, concurrency: int = 4) -> None:
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._starting = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Future[Any]] = set()  # contexts closing in the background
        #: seconds the driver's start and Chromium's launch took (0 until launched)
        self.startup_seconds = 0.0

    @property
    def started(self) -> bool:
        return self._browser is not None

    async def start(self) -> Any:
        """Launch Chromium (once, and again when the one launched has ended: it crashed or
        was killed); BrowserMissing when Playwright or Chromium is absent."""
        async with self._starting:
            if self._browser is not None:
                if self._browser.is_connected():
                    return self._browser
                ended, self._browser = self._browser, None
                with contextlib.suppress(Exception):
                    await ended.close()
                await self._stop_driver()  # a driver that lost its browser: a fresh one
            executable = chromium_path()
            try:
                from playwright.async_api import async_playwright
            except ModuleNotFoundError:
                raise BrowserMissing(INSTALL_PLAYWRIGHT) from None
            began = time.perf_counter()
            try:
                self._playwright = await async_playwright().start()
            except Exception as exc:  # its driver (a Node program in the wheel) did not run
                raise BrowserMissing(
                    f"Playwright's driver did not start ({_reason(exc)}); reinstall it: "
                    "pip install --force-reinstall 'kpi-collector[browser]'"
                ) from None
            try:
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable, args=list(CHROMIUM_ARGS)
                )
            except Exception as exc:
                await self._stop_driver()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BrowserMissing(
                    f"Chromium at {executable} did not start ({first}); set KPI_CHROMIUM to "
                    "a working Chromium binary"
                ) from None
            self.startup_seconds = time.perf_counter() - began
            self._close_on_sigterm()
            return self._browser

    def _close_on_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # someone handles it (the scheduler finishes its job): the run's end closes us
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        except (NotImplementedError, RuntimeError):  # no signal handling on this loop
            return
        self._signal_loop = loop

    def _on_sigterm(self) -> None:
        async def close_then_die() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        asyncio.get_running_loop().create_task(close_then_die())

    async def close(self) -> None:
        """Close Chromium and the driver; safe to call twice, or before any launch."""
        if self._signal_loop is not None:
            with contextlib.suppress(Exception):
                self._signal_loop.remove_signal_handler(signal.SIGTERM)
            self._signal_loop = None
        if self._closing:  # contexts still closing: they end before their Chromium
            await asyncio.wait(set(self._closing), timeout=5)
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
        await self._stop_driver()

    async def _stop_driver(self) -> None:
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            with contextlib.suppress(Exception):
                await playwright.stop()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `concurrency` page slots, with Chromium launched; a `render`
        within uses it. The engine takes it before a source's clock starts, so waiting for
        a slot or for the launch never eats a source's timeout. Reentrant within a task."""
        if _HOLDING.get():
            yield
            return
        async with self._slots:
            await self.start()
            token = _HOLDING.set(True)
            try:
                yield
            finally:
                _HOLDING.reset(token)

    @contextlib.asynccontextmanager
    async def context(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        launched: list[Any] | None = None,
    ) -> AsyncIterator[Any]:
        """A fresh browser context (its own cookies) in a page slot; closed on the way out,
        whatever happens. `headers` go with every request to `origin` (scheme://host:port)
        and with none to other hosts: a page's scripts, fonts and trackers never see the
        source's credentials. `launched`, if given, gets the Chromium the context is in."""
        async with self.slot():
            browser = await self.start()
            if launched is not None:
                launched.append(browser)
            # a document handed over by `_adding` has no network address of its own: Local
            # Network Access would refuse its calls to intranet and loopback hosts unasked
            permissions = ["local-network-access"] if headers else []
            context = await browser.new_context(service_workers="block", permissions=permissions)
            try:
                if headers:
                    await context.route("**/*", _adding(dict(headers), origin))
                yield context
            finally:
                await self._close_context(context)

    async def _close_context(self, context: Any) -> None:
        """Close `context`; one whose page a script keeps busy takes Chromium a while to end:
        its close goes on in the background (`close` waits for it), not in the source's time."""
        closing = asyncio.ensure_future(context.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        closing.add_done_callback(_closed)
        await asyncio.wait({closing}, timeout=_CLOSE_WAIT)

    async def render(
        self,
        url: str,
        *,
        timeout: float,
        wait_for: str | None = None,
        login: PlainLoginForm | None = None,
        auth: PlainAuth | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        ready: Callable[[str, str, str | None], Awaitable[bool]] | None = None,
        shown: bool = False,
    ) -> RenderedPage:
        """Load `url` in a fresh context (after `login`, filled in the browser), then wait
        for `wait_for` (a CSS selector, attached to the DOM) or, without it, for the network
        to go idle (no request for 500 ms); then, with `ready` (given the DOM as HTML, the
        page's URL and its `Content-Language` header: whether the page shows what is to be read), read the DOM again until
        it says so: a script may still replace a placeholder ("…", "--", nothing) with the
        number. All within `timeout` seconds from the moment the page gets its slot; when
        the time is up the last DOM read is returned, ready or not. `shown`: each element
        the page does not show (a stylesheet hides it) has a `hidden` attribute in `html`
        (for `kpi probe`, which lists only what a person sees).

        Raises HttpError (the document's status >= 400; 5xx and 429 transient, connection
        failures transient), LoginError, ExtractError (timed out: what was waited for and
        the title and URL the page showed instead; the DOM over `max_bytes`), BrowserEnded
        (Chromium crashed or was killed meanwhile) or BrowserMissing."""
        send_headers = dict(headers or {})
        query = dict(params or {})
        if auth is not None:
            auth.apply(send_headers, query)
        target = _with_query(url, query)
        launched: list[Any] = []
        crashed: list[bool] = []
        try:
            return await self._render(
                target,
                (launched, crashed),
                timeout,
                wait_for,
                login,
                send_headers,
                max_bytes,
                ready,
                shown,
            )
        except Exception:
            # whatever Playwright said of it ("Target page, context or browser has been
            # closed", "Page crashed"): the page may load in a new renderer or Chromium
            ended = None
            if launched and not launched[0].is_connected():
                ended = "Chromium"
            elif crashed:
                ended = "Chromium's renderer"
            if ended is not None:
                raise BrowserEnded(
                    f"{ended} ended while it rendered {url_without_query(url)} (it crashed or "
                    "was killed: out of memory?); `retries:` loads it again"
                ) from None
            raise

    async def _render(
        self,
        target: str,
        ended: tuple[list[Any], list[bool]],
        timeout: float,
        wait_for: str | None,
        login: PlainLoginForm | None,
        send_headers: dict[str, str],
        max_bytes: int | None,
        ready: Callable[[str, str, str | None], Awaitable[bool]] | None,
        shown: bool,
    ) -> RenderedPage:
        """`render` of `target` (its query and auth in place); `ended` gets the Chromium it
        renders in and a True when the page's renderer crashes, for `render` to tell a
        page's failure from Chromium's end."""
        launched, crashed = ended
        async with self.context(
            headers=send_headers, origin=_origin(target), launched=launched
        ) as context:
            deadline = time.monotonic() + timeout
            page = await context.new_page()
            page.on("crash", lambda _: crashed.append(True))
            if login is not None:
                await _login(page, login, deadline, send_headers, _origin(target))
            response = await _goto(page, target, deadline)
            status = await _check_status(page, response)
            language = await _content_language(response)
            if wait_for is not None:
                await _wait(
                    page,
                    page.wait_for_selector(wait_for, state="attached", timeout=_ms(deadline)),
                    deadline,
                    f"`wait_for:` {wait_for!r}",
                    timeout,
                )
            else:
                await _wait(
                    page,
                    page.wait_for_load_state("networkidle", timeout=_ms(deadline)),
                    deadline,
                    "the network to go idle",
                    timeout,
                    hint="; a page that keeps polling never does: set `wait_for:` to the "
                    "element that holds the number",
                )
            html = await _content(page, max_bytes, shown, deadline)
            if ready is not None:
                pause = _FIRST_PAUSE
                while (
                    not await ready(html, page.url, language)
                    and time.monotonic() + pause < deadline
                ):
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _LAST_PAUSE)
                    html = await _content(page, max_bytes, shown, deadline)
            return RenderedPage(html, page.url, await _title(page) or "", status, language)


#: seconds between two reads of a page that is not ready yet, growing from the first to the last
_FIRST_PAUSE, _LAST_PAUSE = 0.1, 1.0
#: seconds a read of the page (its DOM, its title) may take past the render's timeout; a page
#: whose script never ends answers none (`evaluate` has no timeout of its own)
_BUSY_GRACE = 0.25
#: seconds a source waits for its browser context to close (a busy page's close goes on)
_CLOSE_WAIT = 0.1
#: seconds a page's title (for a message) may take
_TITLE_WAIT = 0.5
#: what a page that did not answer a read shows
_BUSY = "its scripts keep Chromium busy (a script that never ends?)"


def _closed(closing: asyncio.Future[Any]) -> None:
    """A context's close ended: its failure (Chromium gone meanwhile) is nobody's error."""
    if not closing.cancelled():
        closing.exception()


#: the document as a person sees it, as HTML: each open shadow root's content in place of its
#: host's children (a `<slot>` replaced by the nodes assigned to it, else by its fallback
#: content), as `wait_for` (Playwright's selectors pierce open shadow roots) sees it;
#: null when the page has no shadow root (`page.content()` is then the same, and faster).
#: With `shown` true, each element of the body the page does not show (no box, or
#: `visibility: hidden`: a stylesheet hides it) gets a `hidden` attribute in the copy, and
#: each one it lays out as a box of its own in the flow (a block, a flex or grid item, a
#: table cell; not an inline-block, nor one positioned out of the flow) `data-kpi-box`, so
#: that `layout.layout_text` reads no number across its edge, as a person sees none.
_COMPOSED = """(shown) => {
  const hosts = [...document.querySelectorAll('*')].some(e => e.shadowRoot);
  if (!hosts && !shown) return null;
  const unseen = node => shown && document.body && document.body.contains(node) &&
    typeof node.checkVisibility === 'function' &&
    !node.checkVisibility({visibilityProperty: true}) &&
    getComputedStyle(node).display !== 'contents';
  const boxed = node => {
    if (!shown || !document.body || !document.body.contains(node)) return false;
    const style = getComputedStyle(node);
    return !/^(inline|contents|none)/.test(style.display) &&
      style.position !== 'absolute' && style.position !== 'fixed';
  };
  const out = document.implementation.createHTMLDocument('');
  const copy = (node, into) => {
    if (node.nodeType === Node.ELEMENT_NODE) {
      if (node.localName === 'slot' && node.getRootNode() instanceof ShadowRoot) {
        const given = node.assignedNodes();
        for (const child of (given.length ? given : node.childNodes)) copy(child, into);
        return;
      }
      const element = out.importNode(node, false);
      if (unseen(node)) element.setAttribute('hidden', '');
      else if (boxed(node)) element.setAttribute('data-kpi-box', '');
      into.appendChild(element);
      for (const child of (node.shadowRoot || node).childNodes) copy(child, element);
    } else if (node.nodeType === Node.TEXT_NODE || node.nodeType === Node.COMMENT_NODE) {
      into.appendChild(out.importNode(node, false));
    }
  };
  const root = document.documentElement;
  const element = out.importNode(root, false);
  for (const child of root.childNodes) copy(child, element);
  const doctype = document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>' : '';
  return doctype + element.outerHTML;
}"""


#: `_COMPOSED` (else the document as `page.content()` serializes it), measured in the page
#: against `max` bytes of UTF-8 (null: no limit): `{html}`, or `{over: true}` without the
#: HTML, so that a DOM over `max_bytes:` never crosses to the driver (a page's script may
#: build a gigabyte of it). A UTF-16 code unit is at least one byte of UTF-8: a string of
#: more units than `max` is over it uncounted.
_MEASURED = (
    """([shown, max]) => {
  let html = ("""
    + _COMPOSED
    + """)(shown);
  if (html === null) {
    html = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '';
    if (document.documentElement) html += document.documentElement.outerHTML;
  }
  if (max !== null && (html.length > max || new TextEncoder().encode(html).length > max))
    return {over: true};
  return {html};
}"""
)
#: what Playwright says of a read begun while the page navigates: read it again once loaded
_NAVIGATING = ("Execution context was destroyed", "navigat")


async def _content(
    page: Any, max_bytes: int | None, shown: bool = False, deadline: float | None = None
) -> str:
    """The DOM as HTML, open shadow roots in place (`_COMPOSED`; with `shown`, what the page
    does not show marked `hidden`); ExtractError when it is over `max_bytes` (measured in
    the page: such a DOM is never handed over, `_MEASURED`), or when the page does not
    answer by `deadline` (and `_BUSY_GRACE`): a script keeps it busy. A page navigating
    meanwhile is read again once its new document is there."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic()) + _BUSY_GRACE
    try:
        async with asyncio.timeout(left):
            while True:
                try:
                    read = await page.evaluate(_MEASURED, [shown, max_bytes])
                    break
                except Exception as exc:
                    if not any(marker in str(exc) for marker in _NAVIGATING):
                        raise
                with contextlib.suppress(Exception):
                    await page.wait_for_load_state("domcontentloaded")
                await asyncio.sleep(_FIRST_PAUSE)
    except TimeoutError:
        raise ExtractError(
            f"the page {url_without_query(page.url)} did not answer within the timeout: {_BUSY}",
            transient=True,
        ) from None
    if read.get("over"):
        raise ExtractError(
            f"the rendered page {url_without_query(page.url)} is larger than "
            f"{max_bytes} bytes (`max_bytes:`)"
        )
    return str(read["html"])


async def _content_language(response: Any) -> str | None:
    """The document's `Content-Language` header (None without one, or without a response)."""
    if response is None:
        return None
    try:
        value = await response.header_value("content-language")
    except Exception:  # the browser no longer holds the response: no language it gave
        return None
    return str(value) if value is not None else None


async def _check_status(page: Any, response: Any, what: str = "") -> int:
    """The document's HTTP status (0 when the browser gave none); HttpError when it is 400
    or more (5xx and 429 transient; 600 and more, LinkedIn's 999, terminal, as without a
    browser). `what` names the page in the message."""
    status = int(response.status) if response is not None else 0
    if status >= 400:
        where = url_without_query(page.url)
        hint = "server error" if status >= 500 else "request refused"
        if status == 429:
            hint = "rate limited"
        elif status >= 600:
            hint = UNDEFINED_STATUS
        retry_after = None
        if status == 429 or 500 <= status < 600:
            with contextlib.suppress(Exception):
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if retry_after is not None:  # the reload waits that long (a longer one: not at all)
            hint += f" (retry after {wait_text(retry_after)})"
        raise HttpError(
            f"HTTP {status} from {where}{what}: {hint}; {await _showing(page)}",
            status=status,
            url=where,
            retry_after=retry_after,
            transient=False if status >= 600 else None,
        )
    return status


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _adding(headers: dict[str, str], origin: str | None) -> Any:
    """A route handler that adds `headers` to the requests to `origin`, only. Such a request
    is sent without following redirects and its answer handed to the browser, which follows
    a redirect as a new request: that one gets the headers only if it goes to `origin` too
    (headers given to `route.continue_` would go along to wherever a redirect points)."""

    async def handle(route: Any) -> None:
        request = route.request
        if origin is not None and _origin(request.url) != origin:
            await route.continue_()
            return
        try:
            answer = await route.fetch(headers={**request.headers, **headers}, max_redirects=0)
        except Exception as exc:  # refused, reset, timed out: the browser sees a failed load
            with contextlib.suppress(Exception):
                await route.abort(_abort_code(str(exc)))
            return
        await route.fulfill(response=answer)

    return handle


#: the network error a failed `route.fetch` names, as the browser's error code for `abort`
_ABORT_CODES = (
    ("ECONNREFUSED", "connectionrefused"),
    ("ECONNRESET", "connectionreset"),
    ("ENOTFOUND", "namenotresolved"),
    ("EAI_AGAIN", "namenotresolved"),
    ("ETIMEDOUT", "timedout"),
    ("Timeout", "timedout"),
)


def _abort_code(message: str) -> str:
    return next((code for marker, code in _ABORT_CODES if marker in message), "failed")


def _with_query(url: str, query: Mapping[str, str]) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode(list(query.items()))
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _ms(deadline: float) -> float:
    """Milliseconds left before `deadline` (at least 1: Playwright reads 0 as no limit)."""
    return max(1.0, (deadline - time.monotonic()) * 1000)


async def _title(page: Any) -> str | None:
    """The page's title, whitespace collapsed ("" while it navigates, or gone); None when
    the page does not answer within `_TITLE_WAIT` (a script keeps it busy)."""
    try:
        async with asyncio.timeout(_TITLE_WAIT):
            return " ".join((await page.title()).split())
    except TimeoutError:
        return None
    except Exception:  # the page is navigating or gone
        return ""


async def _showing(page: Any) -> str:
    """What the page shows, for a message: its title (redacted, cut) and URL without query."""
    title = await _title(page)
    if title is None:
        return f"the page at {url_without_query(page.url)} did not answer: {_BUSY}"
    title = redact_cut(title, 80)
    shown = f"title {title!r}" if title else "no title"
    return f"the page showed {shown} at {url_without_query(page.url)}"


def _is_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ == "TimeoutError" and type(exc).__module__.startswith("playwright")


async def _wait(
    page: Any, waiting: Any, deadline: float, what: str, timeout: float, hint: str = ""
) -> None:
    try:
        await waiting
    except Exception as exc:
        if _is_timeout(exc) or time.monotonic() >= deadline:
            raise ExtractError(
                f"waited {timeout:g}s for {what}; {await _showing(page)}{hint}", transient=True
            ) from None
        raise ExtractError(f"while waiting for {what}: {_reason(exc)}") from None


async def _goto(page: Any, url: str, deadline: float) -> Any:
    try:
        return await page.goto(url, wait_until="domcontentloaded", timeout=_ms(deadline))
    except Exception as exc:
        where = url_without_query(url)
        if _is_timeout(exc):
            raise HttpError(
                f"{where} did not load within the timeout; {await _showing(page)}",
                transient=True,
            ) from None
        if "ERR_NAME_NOT_RESOLVED" in str(exc) and await _unknown_host(url):
            raise unknown_host_error(url, urlsplit(url).hostname or "") from None
        tls = _tls_failure(str(exc), url)
        if tls is not None:  # the same certificate, the same handshake next time
            raise HttpError(f"cannot load {where}: {tls}", url=where, transient=False) from None
        raise HttpError(f"cannot load {where}: {_reason(exc)}", transient=True) from None


_NET_ERROR = re.compile(r"net::(ERR_[A-Z_]+)")


def _tls_failure(message: str, url: str) -> str | None:
    """What a failed TLS handshake of Chromium's (its net error in `message`) means for the
    user, as `http._tls_message` says it without a browser; None for another failure."""
    found = _NET_ERROR.search(message)
    code = found.group(1) if found else ""
    host = urlsplit(url).netloc
    if code.startswith("ERR_CERT_"):
        return (
            f"the TLS certificate of {host} is not valid for Chromium (net::{code}); fix the "
            "server's certificate, or add the CA that signed it to Chromium's store: "
            "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n my-ca -i ca.pem"
        )
    if code == "ERR_SSL_PROTOCOL_ERROR":  # what a plain HTTP answer to the handshake gives
        return f"{host} does not answer in TLS (net::{code}); is the URL http://, not https://?"
    if code == "ERR_SSL_VERSION_OR_CIPHER_MISMATCH":
        return f"the TLS handshake with {host} failed (net::{code}: no TLS version or cipher in common)"
    return None


async def _unknown_host(url: str) -> bool:
    """Whether the host of `url` does not exist, as the system's resolver says: Chromium
    names a name that does not exist and a resolver that did not answer (EAI_AGAIN, which
    may pass) alike, ERR_NAME_NOT_RESOLVED. A host that resolves (a redirect's target was
    the one that did not) is no such case."""
    host = urlsplit(url).hostname
    if not host:
        return False
    try:
        await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as exc:
        return is_unknown_host(exc)
    return False


#: a URL's query and fragment, where credentials may hide (as `url_without_query` drops them)
_URL_QUERY = re.compile(r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'"]*)[?#][^\s'"]*""")


def _reason(exc: BaseException) -> str:
    """The first line of a Playwright error (its call logs follow), secrets masked and the
    URLs in it without their query."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return redact(_URL_QUERY.sub(r"\1", first.removeprefix("Error: ").strip()))


# the login form, filled in the browser ------------------------------------------------------

_SUBMITS = (
    "button:not([type=button]):not([type=reset]):not([disabled]), "
    "input[type=submit]:not([disabled]), input[type=image]:not([disabled])"
)


async def _login(
    page: Any,
    form: PlainLoginForm,
    deadline: float,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
) -> None:
    """Fill `form.fields` into the login form the page at `form.url` shows (once its scripts
    drew it) and press its submit button, as a person does; then wait until the form is gone
    (or `success:` shows). LoginError says what went wrong, with field names only; the
    fields go to the login page's host only, as `_FieldsGuard` keeps them (`headers` go
    with the requests it sends itself to `origin`, as `Browser.context` adds them)."""
    where = url_without_query(form.url)
    await _check_status(page, await _goto(page, form.url, deadline), " (the login page)")
    chosen = form.form or "input[type=password]"
    budget = max(0.0, deadline - time.monotonic())
    try:
        await page.wait_for_selector(chosen, state="attached", timeout=_ms(deadline))
    except Exception as exc:
        if not _is_timeout(exc):
            raise LoginError(f"login: {_reason(exc)} on {where}", transient=False) from None
        what = f"`form:` {form.form!r}" if form.form else "a form with a password field"
        raise LoginError(
            f"login: waited {budget:.3g}s for {what}; {await _showing(page)}", transient=True
        ) from None
    node = page.locator(chosen).first if form.form else await _login_form(page, form)
    names = list(form.fields)
    typed: dict[str, str] = {}  # each value typed in, by the kind of field it went into
    for name, secret in form.fields.items():
        field = node.locator(f"[name={_css_string(name)}]")
        if await field.count() == 0:
            present = await node.locator("[name]").evaluate_all(
                "els => els.map(e => e.getAttribute('name'))"
            )
            known = ", ".join(dict.fromkeys(str(n) for n in present)) or "none"
            raise LoginError(
                f"login: the form on {where} has no field named {name!r}; it has: {known}",
                transient=False,
            )
        value = reveal(secret) or ""
        try:
            typed[value] = await _type_in(field, value, deadline)
        except Exception as exc:
            if not _is_timeout(exc):
                raise LoginError(
                    f"login: cannot type into the field {name!r} on {where}: {_reason(exc)}",
                    transient=False,
                ) from None
            raise LoginError(
                f"login: the field {name!r} on {where} took no value within the timeout "
                f"(disabled, read-only or hidden?); {await _showing(page)}",
                transient=True,
            ) from None
    button = await _submit_button(node, form.submit, where)
    charset = "UTF-8"
    with contextlib.suppress(Exception):  # the encoding the page's form is sent in
        async with asyncio.timeout(_TITLE_WAIT):  # a busy page answers no `evaluate`
            charset = str(await page.evaluate("document.characterSet"))
    secrets = _sent_forms(_secret_values(typed), charset)
    guard = _FieldsGuard(page.url, form.submit_url, secrets, headers, origin)
    said: list[str] = []  # the dialogs the page opened from here on (`_dialogs`)
    page.on("dialog", _dialogs(said))
    await page.route("**/*", guard.handle)
    try:
        try:
            if button is None:
                last = node.locator(f"[name={_css_string(names[-1])}]").first
                await last.press("Enter", timeout=_ms(deadline))
            else:
                await button.click(timeout=_ms(deadline))
        except Exception as exc:
            guard.check()
            raise LoginError(f"login: cannot submit the form on {where}: {_reason(exc)}") from None
        await guard.racing(_logged_in(page, form, chosen, names, deadline, said))
    finally:
        with contextlib.suppress(Exception):
            await page.unroute("**/*", guard.handle)


def _secret_values(typed: Mapping[str, str]) -> list[str]:
    """The values a login must not send elsewhere: those typed into password fields; a
    login without one (a PIN in a text field), each value of 4 characters or more."""
    passwords = [value for value, kind in typed.items() if kind == "password" and value]
    return passwords or [value for value in typed if len(value) >= 4]


def _sent_forms(values: list[str], charset: str) -> list[bytes]:
    """Each of `values` in the forms a request may carry it in: as `secrets.encodings`
    has them (UTF-8: as is, URL-encoded, JSON-escaped...), and in the page's `charset` (a
    windows-1252 page sends `ä` as `%E4`) as is and form-urlencoded; shortest first."""
    from kpi_collector.collect.charset import label_codec

    codec = label_codec(charset) or "utf-8"
    forms: set[bytes] = set()
    for value in values:
        forms |= {form.encode() for form in encodings(value)}
        for raw in {value.encode(), value.encode(codec, "xmlcharrefreplace")}:
            forms |= {raw, _form_urlencoded(raw)}
    return sorted((form for form in forms if form), key=len)


#: the bytes application/x-www-form-urlencoded leaves as they are (WHATWG URL standard)
_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")


def _form_urlencoded(raw: bytes) -> bytes:
    """`raw` as a browser writes it into a form's body or query: `+` for a space, `%XX`
    for each byte but ASCII letters, digits and `*-._`."""
    return b"".join(
        b"+" if byte == 0x20 else bytes([byte]) if byte in _FORM_SAFE else b"%%%02X" % byte
        for byte in raw
    )


class _FieldsGuard:
    """While a login is sent: a page route that refuses a request holding a typed secret
    (in its URL or body, in any form a browser encodes it) to another host than the login
    page's (or `submit_url`'s), or unencrypted from an https page, the rule the login
    without a browser keeps (`http._check_destination`, `http._fields_stay_on_host`). Such
    a request to the login's own host is sent here without following redirects: a 307 or
    308 that would carry the body on to another host is refused too (the browser's own
    redirects never reach a route). The first refusal is kept (`check` raises it) and ends
    the wait for the login (`racing`)."""

    def __init__(
        self,
        page_url: str,
        submit_url: str | None,
        forms: list[bytes],
        headers: Mapping[str, str] | None,
        origin: str | None,
    ) -> None:
        self.page_url = page_url
        self.allowed = urlsplit(urljoin(page_url, submit_url)).hostname if submit_url else None
        self.forms = forms
        self.headers = dict(headers or {})
        self.origin = origin
        self.refused: LoginError | None = None
        self._stop = asyncio.Event()

    def _holds(self, request: Any) -> bool:
        """Whether `request` sends a typed secret: in its body, or in the URL of a page it
        loads (a GET form); an image's or a script's URL that happens to hold the letters
        of a short password does not count."""
        body = request.post_data_buffer or b""
        url = request.url.encode() if request.is_navigation_request() else b""
        return any(form in url or form in body for form in self.forms)

    def _why(self, url: str) -> str | None:
        page, target = urlsplit(self.page_url), urlsplit(url)
        if self.allowed is not None and target.hostname == self.allowed:
            return None
        if target.hostname != page.hostname:
            return "another host"
        if page.scheme == "https" and target.scheme != "https":
            return "unencrypted (http), from an https page"
        return None

    async def _refuse(self, route: Any, message: str) -> None:
        if self.refused is None:
            self.refused = LoginError(message, transient=False)
        self._stop.set()
        with contextlib.suppress(Exception):
            await route.abort("blockedbyclient")

    async def handle(self, route: Any) -> None:
        request = route.request
        if not self.forms or not self._holds(request):
            await route.fallback()
            return
        target = url_without_query(request.url)
        why = self._why(request.url)
        if why is not None:
            await self._refuse(
                route,
                f"login: the form on {url_without_query(self.page_url)} sends the login "
                f"fields to {target}, {why}; if that is the site's own sign-in, give "
                f"`submit_url: {target}`",
            )
            return
        adding = self.headers if self.origin is None or _origin(request.url) == self.origin else {}
        try:
            answer = await route.fetch(headers={**request.headers, **adding}, max_redirects=0)
        except Exception as exc:  # refused, reset, timed out: the browser sees a failed load
            with contextlib.suppress(Exception):
                await route.abort(_abort_code(str(exc)))
            return
        location = answer.headers.get("location")
        if answer.status in (307, 308) and location:
            there = urljoin(request.url, location)
            why = self._why(there)
            if why is not None:
                there = url_without_query(there)
                await self._refuse(
                    route,
                    f"login: {target} redirects the login fields (a 307 or 308 sends them "
                    f"on) to {there}, {why}; if that is the site's own sign-in, give "
                    f"`submit_url: {there}`",
                )
                return
        await route.fulfill(response=answer)

    def check(self) -> None:
        """Raise the refusal, if a request was refused."""
        if self.refused is not None:
            raise self.refused

    async def racing(self, waiting: Awaitable[None]) -> None:
        """`waiting` (the wait for the login's outcome), ended by a refusal, which it raises:
        a refused submission leaves the form (or an error page) where the answer would be."""
        task = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stop):
                if not pending.done():
                    pending.cancel()
            await asyncio.gather(task, stop, return_exceptions=True)
        self.check()
        task.result()


async def _login_form(page: Any, form: PlainLoginForm) -> Any:
    """The form around the page's password field; for a login drawn without a `<form>` (a
    script sends it), the nearest element around that field holding every field named in
    `fields`, else the page's body."""
    node = page.locator("form:has(input[type=password])").first
    if await node.count():
        return node
    holds = " and ".join(
        f".//*[@name={_xpath_string(name)}]" for name in form.fields if _xpath_string(name)
    )
    around = page.locator("input[type=password]").first.locator(
        f"xpath=ancestor::*[{holds}][1]" if holds else "xpath=.."
    )
    return around if await around.count() else page.locator("body")


def _xpath_string(text: str) -> str:
    """`text` as an XPath 1.0 string literal ('' when it holds both kinds of quotes)."""
    if "'" not in text:
        return f"'{text}'"
    return f'"{text}"' if '"' not in text else ""


async def _type_in(fields: Any, value: str, deadline: float) -> str:
    """Type `value` into the first of `fields` (the form's inputs of one name) as a person
    does, by `deadline` (each action waits for the field to take a value until then, not
    Playwright's 30 s); the field's kind (`password`, `text`, `checkbox`, `select`...). Of
    a group of radio buttons (or checkboxes) sharing the name, the one whose value is
    `value` is ticked; a lone checkbox is ticked unless `value` says no ("", "0", "false",
    "off")."""
    field = fields.first
    kind: str = await field.evaluate(
        "e => e.tagName.toLowerCase() === 'input' ? (e.type || 'text') : e.tagName.toLowerCase()",
        timeout=_ms(deadline),
    )
    if kind == "radio" or (kind == "checkbox" and await fields.count() > 1):
        chosen = fields.and_(field.page.locator(f"[value={_css_string(value)}]"))
        if await chosen.count():
            await chosen.first.set_checked(True, timeout=_ms(deadline))
            return kind
    if kind in ("checkbox", "radio"):
        ticked = value.lower() not in ("", "0", "false", "off", "no")
        await field.set_checked(ticked, timeout=_ms(deadline))
    elif kind == "select":
        await field.select_option(value, timeout=_ms(deadline))
    elif kind == "hidden":
        await field.evaluate("(e, v) => { e.value = v; }", value, timeout=_ms(deadline))
    else:
        await field.fill(value, timeout=_ms(deadline))
    return kind


async def _submit_button(node: Any, submit: str | None, where: str) -> Any:
    buttons = node.locator(_SUBMITS)
    if submit is None:
        return buttons.first if await buttons.count() else None
    for candidate in (
        node.locator(f"button[name={_css_string(submit)}], input[name={_css_string(submit)}]"),
        node.get_by_role("button", name=submit, exact=True),
        node.locator(f"[id={_css_string(submit)}]"),
    ):
        count = await candidate.count()
        if count == 1:
            return candidate
        if count > 1:
            raise LoginError(
                f"login: `submit:` {submit!r} matches {count} buttons on {where}; name one "
                "by its label",
                transient=False,
            )
    with contextlib.suppress(Exception):
        by_css = node.locator(submit)
        if await by_css.count() >= 1:
            return by_css.first
    raise LoginError(
        f"login: `submit:` {submit!r} names no submit button of the form on {where}",
        transient=False,
    )


#: characters of a dialog's message an error quotes
_DIALOG_CUT = 120


def _dialogs(said: list[str]) -> Callable[[Any], Awaitable[None]]:
    """A page's `dialog` handler that dismisses each dialog (`alert`, `confirm`, `prompt`,
    `beforeunload`) as Playwright does unasked, and adds to `said` what it said (secrets
    masked, cut), for the login's error: a page may refuse a login in an `alert()`."""

    async def handle(dialog: Any) -> None:
        kind = str(dialog.type)
        message = " ".join(str(dialog.message).split())
        shown = f"{kind} {redact_cut(message, _DIALOG_CUT)!r}"
        said.append(shown if kind == "alert" else f"{shown} (dismissed)")
        with contextlib.suppress(Exception):  # the page closed meanwhile
            await dialog.dismiss()

    return handle


async def _logged_in(
    page: Any,
    form: PlainLoginForm,
    chosen: str,
    names: list[str],
    deadline: float,
    said: list[str] | None = None,
) -> None:
    """Wait for the login's outcome by `deadline`; LoginError when it was refused (ending
    with what the page's dialogs said, `said`)."""
    names_sent = f"sent {', '.join(names)}; check the values in `fields:`"

    def sent() -> str:  # built when raised: with the dialogs opened until then
        return names_sent + (f"; the page said: {', '.join(said)}" if said else "")

    waits = []
    if form.success is not None:
        waits.append(("success", form.success, "attached"))
    else:
        waits.append(("gone", "input[type=password]", "detached"))
    if form.failure is not None:
        waits.append(("failure", form.failure, "attached"))
    tasks = {
        asyncio.ensure_future(
            page.wait_for_selector(selector, state=state, timeout=_ms(deadline))
        ): kind
        for kind, selector, state in waits
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:  # cancelled too (a refused submission ends the wait): no wait outlives it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finished = [(tasks[t], t.exception()) for t in done]
    for kind, error in finished:
        if error is None and kind == "failure":
            raise LoginError(
                f"login refused: {url_without_query(page.url)} shows `failure:` "
                f"{form.failure!r}; {sent()}",
                transient=False,
            )
    if any(error is None for _, error in finished):
        with contextlib.suppress(Exception):  # cookies set by the answer are in by now
            await page.wait_for_load_state("load", timeout=_ms(deadline))
        if any(kind == "gone" and error is None for kind, error in finished):
            # the password field was gone while the answer loaded; a refusal that draws its
            # form again by JavaScript (after fetching a new CSRF token) has it back once the
            # network is idle: only then is "gone" a success
            with contextlib.suppress(Exception):
                await page.wait_for_load_state("networkidle", timeout=_ms(deadline))
            if await page.locator("input[type=password]").count():
                raise LoginError(
                    f"login refused: the login form is still there; {await _showing(page)}; {sent()}",
                    transient=False,
                )
        return
    if form.success is not None:
        raise LoginError(
            f"login: waited for `success:` {form.success!r}; {await _showing(page)}; {sent()}",
            transient=False,
        )
    raise LoginError(
        f"login refused: the login form is still there; {await _showing(page)}; {sent()}",
        transient=False,
    )


def _css_string(text: str) -> str:
    """`text` as a quoted CSS string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ") + '"'
