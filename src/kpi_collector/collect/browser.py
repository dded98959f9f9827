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
from urllib.parse import urlencode, urlsplit, urlunsplit

from kpi_collector.collect.http import url_without_query
from kpi_collector.errors import ExtractError, HttpError, LoginError, SourceError
from kpi_collector.secrets import redact, redact_cut, reveal

if TYPE_CHECKING:
    from kpi_collector.collect.http import Auth, LoginForm

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
    (after redirects and script navigation), its `title` and the HTTP `status` of the
    document (0 when the browser gave none)."""

    html: str
    url: str
    title: str
    status: int


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
        #: seconds the driver's start and Chromium's launch took (0 until launched)
        self.startup_seconds = 0.0

    @property
    def started(self) -> bool:
        return self._browser is not None

    async def start(self) -> Any:
        """Launch Chromium (once); BrowserMissing when Playwright or Chromium is absent."""
        async with self._starting:
            if self._browser is not None:
                return self._browser
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
        self, *, headers: Mapping[str, str] | None = None, origin: str | None = None
    ) -> AsyncIterator[Any]:
        """A fresh browser context (its own cookies) in a page slot; closed on the way out,
        whatever happens. `headers` go with every request to `origin` (scheme://host:port)
        and with none to other hosts: a page's scripts, fonts and trackers never see the
        source's credentials."""
        async with self.slot():
            browser = await self.start()
            # a document handed over by `_adding` has no network address of its own: Local
            # Network Access would refuse its calls to intranet and loopback hosts unasked
            permissions = ["local-network-access"] if headers else []
            context = await browser.new_context(service_workers="block", permissions=permissions)
            try:
                if headers:
                    await context.route("**/*", _adding(dict(headers), origin))
                yield context
            finally:
                with contextlib.suppress(Exception):
                    await context.close()

    async def render(
        self,
        url: str,
        *,
        timeout: float,
        wait_for: str | None = None,
        login: LoginForm | None = None,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        ready: Callable[[str, str], Awaitable[bool]] | None = None,
        shown: bool = False,
    ) -> RenderedPage:
        """Load `url` in a fresh context (after `login`, filled in the browser), then wait
        for `wait_for` (a CSS selector, attached to the DOM) or, without it, for the network
        to go idle (no request for 500 ms); then, with `ready` (given the DOM as HTML and
        the page's URL: whether the page shows what is to be read), read the DOM again until
        it says so: a script may still replace a placeholder ("…", "--", nothing) with the
        number. All within `timeout` seconds from the moment the page gets its slot; when
        the time is up the last DOM read is returned, ready or not. `shown`: each element
        the page does not show (a stylesheet hides it) has a `hidden` attribute in `html`
        (for `kpi probe`, which lists only what a person sees).

        Raises HttpError (the document's status >= 400; 5xx and 429 transient, connection
        failures transient), LoginError, ExtractError (timed out: what was waited for and
        the title and URL the page showed instead; the DOM over `max_bytes`) or
        BrowserMissing."""
        send_headers = dict(headers or {})
        query = dict(params or {})
        if auth is not None:
            auth.apply(send_headers, query)
        target = _with_query(url, query)
        async with self.context(headers=send_headers, origin=_origin(target)) as context:
            deadline = time.monotonic() + timeout
            page = await context.new_page()
            if login is not None:
                await _login(page, login, deadline)
            response = await _goto(page, target, deadline)
            status = await _check_status(page, response)
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
            html = await _content(page, max_bytes, shown)
            if ready is not None:
                pause = _FIRST_PAUSE
                while not await ready(html, page.url) and time.monotonic() + pause < deadline:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _LAST_PAUSE)
                    html = await _content(page, max_bytes, shown)
            return RenderedPage(html, page.url, await _title(page), status)


#: seconds between two reads of a page that is not ready yet, growing from the first to the last
_FIRST_PAUSE, _LAST_PAUSE = 0.1, 1.0


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


async def _content(page: Any, max_bytes: int | None, shown: bool = False) -> str:
    """The DOM as HTML, open shadow roots in place (`_COMPOSED`; with `shown`, what the page
    does not show marked `hidden`); ExtractError when it is over `max_bytes`."""
    composed = None
    with contextlib.suppress(Exception):  # the page is navigating: `content()` waits for it
        composed = await page.evaluate(_COMPOSED, shown)
    html = str(composed) if composed is not None else str(await page.content())
    if max_bytes is not None and len(html.encode("utf-8", errors="replace")) > max_bytes:
        raise ExtractError(
            f"the rendered page {url_without_query(page.url)} is larger than "
            f"{max_bytes} bytes (`max_bytes:`)"
        )
    return html


async def _check_status(page: Any, response: Any, what: str = "") -> int:
    """The document's HTTP status (0 when the browser gave none); HttpError when it is 400
    or more (5xx and 429 transient). `what` names the page in the message."""
    status = int(response.status) if response is not None else 0
    if status >= 400:
        where = url_without_query(page.url)
        hint = "server error" if status >= 500 else "request refused"
        raise HttpError(
            f"HTTP {status} from {where}{what}: {hint}; {await _showing(page)}",
            status=status,
            url=where,
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


async def _title(page: Any) -> str:
    try:
        return " ".join((await page.title()).split())
    except Exception:  # the page is navigating or gone
        return ""


async def _showing(page: Any) -> str:
    """What the page shows, for a message: its title (redacted, cut) and URL without query."""
    title = redact_cut(await _title(page), 80)
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
        raise HttpError(f"cannot load {where}: {_reason(exc)}", transient=True) from None


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


async def _login(page: Any, form: LoginForm, deadline: float) -> None:
    """Fill `form.fields` into the login form the page at `form.url` shows (once its scripts
    drew it) and press its submit button, as a person does; then wait until the form is gone
    (or `success:` shows). LoginError says what went wrong, with field names only."""
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
        await _type_in(field.first, reveal(secret) or "")
    button = await _submit_button(node, form.submit, where)
    try:
        if button is None:
            await node.locator(f"[name={_css_string(names[-1])}]").first.press("Enter")
        else:
            await button.click(timeout=_ms(deadline))
    except Exception as exc:
        raise LoginError(f"login: cannot submit the form on {where}: {_reason(exc)}") from None
    await _logged_in(page, form, chosen, names, deadline)


async def _login_form(page: Any, form: LoginForm) -> Any:
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


async def _type_in(field: Any, value: str) -> None:
    kind = await field.evaluate(
        "e => e.tagName.toLowerCase() === 'input' ? (e.type || 'text') : e.tagName.toLowerCase()"
    )
    if kind in ("checkbox", "radio"):
        await field.set_checked(value.lower() not in ("", "0", "false", "off", "no"))
    elif kind == "select":
        await field.select_option(value)
    elif kind == "hidden":
        await field.evaluate("(e, v) => { e.value = v; }", value)
    else:
        await field.fill(value)


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


async def _logged_in(
    page: Any, form: LoginForm, chosen: str, names: list[str], deadline: float
) -> None:
    sent = f"sent {', '.join(names)}; check the values in `fields:`"
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
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    finished = [(tasks[t], t.exception()) for t in done]
    for kind, error in finished:
        if error is None and kind == "failure":
            raise LoginError(
                f"login refused: {url_without_query(page.url)} shows `failure:` "
                f"{form.failure!r}; {sent}",
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
                    f"login refused: the login form is still there; {await _showing(page)}; {sent}",
                    transient=False,
                )
        return
    if form.success is not None:
        raise LoginError(
            f"login: waited for `success:` {form.success!r}; {await _showing(page)}; {sent}",
            transient=False,
        )
    raise LoginError(
        f"login refused: the login form is still there; {await _showing(page)}; {sent}",
        transient=False,
    )


def _css_string(text: str) -> str:
    """`text` as a quoted CSS string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ") + '"'
