"""A number a page shows before its script fills in the real one, as the element says itself:
a counter script's start (`<span data-to-value="12345">0</span>`, Elementor, PureCounter,
jQuery countTo) and `aria-busy="true"` content. Before, `kpi run` stored such a 0 (and, with
`render: true`, whatever count the animation had reached) as the page's number; now it is
an error that names the attribute to read, and a rendered page is read again until the
script is done. A bare `0` with no such sign is a zero: nothing tells it apart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.extract import HtmlDocument, Metric
from kpi_collector.demo.server import BackgroundServer
from kpi_collector.errors import ExtractError
from tests.cli import run_kpi

PAGE = """<html lang="en"><body>
<div id="elementor"><span class="elementor-counter-number" data-duration="2000"
  data-to-value="12345" data-from-value="0" data-delimiter=",">0</span></div>
<span id="pure" class="purecounter" data-purecounter-start="0"
  data-purecounter-end="98">0</span><span>%</span>
<span id="count-to" data-to="250" data-speed="1500">0</span>
<span id="done" data-to-value="12345">12,345</span>
<span id="short" data-count="1234">1.2k</span>
<span id="modal-link" data-target="#signup">0</span>
<section aria-busy="true"><p>Orders today: <b id="busy">0</b></p></section>
<p>Open tickets: <b id="zero">0</b></p>
</body></html>"""

READ = {  # metric: (css, stored value)
    "done": ("#done", 12345),  # the counter has arrived: text and target agree
    "short": ("#short", 1200),  # the text writes the same number short
    "modal_link": ("#modal-link", 0),  # `data-target` names no number here
    "zero": ("#zero", 0),  # a zero with no sign of a placeholder is a zero
    "elementor_attr": ("#elementor span", None),  # read with attr: data-to-value
    "counter_zero": ("#count-to", None),  # allow_zero: true takes the 0 shown
}
REFUSED = {  # metric: (css, what the error says)
    "elementor": ("#elementor", "counts it to its `data-to-value` (12345)"),
    "pure": ("#pure", "counts it to its `data-purecounter-end` (98)"),
    "count_to": ("#count-to", "read that with `attr: data-to`"),
    "busy": ("#busy", 'the page marks it busy (aria-busy="true")'),
}


@pytest.fixture
def page() -> Iterator[str]:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", handler)
    with BackgroundServer(app) as url:
        yield url


def test_a_placeholder_a_script_replaces_is_not_stored(page: str, workdir: Path) -> None:
    lines = []
    for name, (css, _) in {**READ, **REFUSED}.items():
        options = ""
        if name == "elementor_attr":
            options = ", attr: data-to-value"
        elif name == "counter_zero":
            options = ", allow_zero: true"
        lines.append(f'      {name}: {{css: "{css}"{options}}}')
        xpath = css.lstrip("#").split(" ")[0]
        inner = "/span" if " " in css else ""
        lines.append(f"      {name}_x: {{xpath: \"//*[@id='{xpath}']{inner}\"{options}}}")
    (workdir / "kpi.yaml").write_text(
        f"sources:\n  - name: p\n    type: html\n    url: {page}/\n    metrics:\n"
        + "\n".join(lines)
        + "\n"
    )
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    want = {"elementor_attr": 12345, "counter_zero": 0}
    want |= {name: value for name, (_, value) in READ.items() if value is not None}
    want |= {f"{name}_x": value for name, value in list(want.items())}
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {f"p.{name}": value for name, value in want.items()}
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = dict(conn.execute("SELECT kpi, message FROM run_errors"))
    assert stored == values
    assert set(errors) == {f"p.{n}{x}" for n in REFUSED for x in ("", "_x")}
    for name, (_, says) in REFUSED.items():
        for metric in (name, f"{name}_x"):
            assert errors[f"p.{metric}"].startswith(f"{metric}: the element shows ")
            assert says in errors[f"p.{metric}"]


@pytest.mark.parametrize(
    ("html", "value"),
    [
        ('<p id=v data-to="1234">617</p>', None),  # a count caught mid-animation
        ('<p id=v data-count="50">$0</p>', None),
        ('<p id=v data-end="45">0%</p>', None),
        ('<p id=v data-to="1234">1,234</p>', 1234),
        ('<p id=v data-to="0">0</p>', 0),  # it counts to 0: 0 is the number
        ('<p id=v data-count="1234.5">1,234.5</p>', 1234.5),
        ('<div aria-busy="false"><p id=v>0</p></div>', 0),
        # a goal beside the amount: only a 0 under `data-target`/`data-count` is a start
        ('<p id=v data-target="5000">1,234</p>', 1234),
        ('<p id=v data-count="5000">$1,234</p>', 1234),
        ('<p id=v data-target="5000">0</p>', None),
        ('<div aria-busy="true"><p id=v>12</p></div>', 12),  # a number shown is the page's
        # a carousel's indicators name slides, not counts, and hold no text
        ('<div id=v>0 open<ol><li data-bs-slide-to="1"></li><li data-to="2"></li></ol></div>', 0),
    ],
)
def test_a_counter_short_of_its_target_is_an_error(html: str, value: float | None) -> None:
    document = HtmlDocument(html)
    for metric in (Metric(css="#v"), Metric(xpath="//*[@id='v']")):
        if value is None:
            with pytest.raises(ExtractError, match="while the page's script counts it"):
                document.metric("m", metric)
        else:
            assert document.metric("m", metric) == value


def test_a_selector_matched_in_a_process_of_its_own_sees_the_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A costly selector runs in `css_child` (forced: no step allowed here); it passes the
    element's counter and busy state on, so the same placeholders are refused."""
    from kpi_collector.collect import extract

    monkeypatch.setattr(extract, "CSS_STEPS", 0)
    document = HtmlDocument(f"<div><div><div>{PAGE}</div></div></div>")
    for selector, says in [
        ("body div div #elementor", "counts it to its `data-to-value` (12345)"),
        ("body div section #busy", "aria-busy"),
    ]:
        assert not document._lexbor_is_bounded(selector)
        with pytest.raises(ExtractError, match=says.replace("(", r"\(").replace(")", r"\)")):
            document.metric("m", Metric(css=selector))
    assert document.metric("m", Metric(css="body div div #done")) == 12345
    assert document.metric("m", Metric(css="body div div #zero")) == 0


ANIMATED = """<html lang="en"><body>
<p>Customers: <span id="customers" data-to-value="12345">0</span></p>
<p>Orders: <b id="orders" aria-busy="true">0</b></p>
<script>
  // counts 0 → 12,345 over 1.5 s, as counter widgets do once the page has loaded
  window.addEventListener("load", () => {
    const el = document.getElementById("customers");
    const goal = Number(el.dataset.toValue), start = performance.now();
    const step = (now) => {
      const done = Math.min((now - start) / 1500, 1);
      el.textContent = Math.round(goal * done).toLocaleString("en-US");
      if (done < 1) requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
    setTimeout(() => {
      const orders = document.getElementById("orders");
      orders.textContent = "0";  // the script's answer: a real zero, no longer busy
      orders.removeAttribute("aria-busy");
    }, 1000);
  });
</script>
</body></html>"""


@pytest.mark.browser
def test_a_rendered_page_is_read_once_its_counter_has_arrived(workdir: Path) -> None:
    """With `render: true` the page is read again until the counter shows its target (not
    the 0 it starts from, nor a count on the way) and the busy element is filled."""
    from tests.test_dashboard_browser import require_chromium

    require_chromium()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=ANIMATED, content_type="text/html")

    app.router.add_get("/", handler)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(
            "defaults: {timeout: 15, retries: 0}\nsources:\n"
            f'  - {{name: p, type: html, url: "{url}/", render: true, '
            'metrics: {customers: "#customers", orders: "#orders"}}\n'
        )
        result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {"p.customers": 12345, "p.orders": 0}
