"""`kpi probe`: on 20 generated pages (tables, cards, nested lists, numbers written many ways)
every number put there is found, every selector it lists selects exactly one element (checked
with lxml's cssselect, not the Lexbor engine probe uses) and, put in a config and run by
`kpi run`, stores the value probe listed; the demo's pages give the demo's metrics."""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kpi_collector.demo.server import BackgroundServer, make_app, metric
from kpi_collector.demo.setup import write_demo_folder
from tests.cli import run_kpi, stored_values

PAGES = 20

# (how it is written, its value): each a way pages write numbers, value worked out by hand
Format = tuple[str, float]


def formats(rng: random.Random) -> list[Format]:
    n = rng.randint(1_000, 999_999)
    cents = rng.randint(0, 99)
    small = rng.randint(2, 99)
    tenths = rng.randint(11, 99)
    out: list[Format] = [
        (f"{n:,}", float(n)),  # 12,374
        (f"${n:,}.{cents:02d}", n + cents / 100),  # $12,374.05
        (f"{tenths // 10}.{tenths % 10}%", tenths / 10),  # 5.9%
        (f"{small}.{tenths % 10}k", small * 1000 + (tenths % 10) * 100),  # 12.3k
        (f"({n:,})", -float(n)),  # accounting negative
        (f"({small}.{tenths % 10}k)", -(small * 1000 + (tenths % 10) * 100)),  # (12.3k)
        (f"(${small}.{tenths % 10}M)", -(small * 1e6 + (tenths % 10) * 1e5)),  # ($12.3M)
        (f"{small}.{tenths % 10} %", small + (tenths % 10) / 10),  # 12.3 %
        (f"-{small}.{tenths % 10}%", -(small + (tenths % 10) / 10)),  # -12.3%
        (f"\u2212{small}", -float(small)),  # a typographic minus
        (f"{tenths // 10}.{tenths % 10} million", (tenths // 10) * 1e6 + (tenths % 10) * 1e5),
        (str(small), float(small)),
        (f"{n:,}".replace(",", "\u202f"), float(n)),  # 12 374 with narrow no-break spaces
        (f"\u20b9{indian(n * 10 + 7)}", float(n * 10 + 7)),  # ₹1,23,747 (Indian groups)
        (str(small).translate(ARABIC_INDIC), float(small)),  # ٤٢
        (f"{n:,}".replace(",", " ") + f",{tenths % 10} \u20ac", n + (tenths % 10) / 10),
    ]
    rng.shuffle(out)
    return out


ARABIC_INDIC = str.maketrans(
    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
)


def indian(n: int) -> str:
    """`n` grouped as in India: the last three digits, then pairs (12,34,567)."""
    digits = str(n)
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while head:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([*pairs, tail])


GENERATED = ("css-1q2w3e", "sc-bdVaJa", "jsx-2041823", "Card_value__x7Yz2")


def card(rng: random.Random, label: str, shown: str, i: int) -> str:
    junk = rng.choice(GENERATED)
    named = f' data-testid="stat-{label.lower().replace(" ", "-")}"' if i % 3 == 0 else ""
    return (
        f'<div class="card {junk}"><h3 class="card-title">{label}</h3>'
        f'<span class="value {rng.choice(GENERATED)}"{named}>{shown}</span></div>'
    )


LABELS = [
    "Downloads",
    "Revenue",
    "Churn",
    "Listeners",
    "Refunds",
    "Delta",
    "Reach",
    "Seats",
    "Plays",
    "Sales",
    "Trials",
    "Margin",
    "Losses",
    "Burn",
    "Uptime",
    "Drift",
]


def page(i: int) -> tuple[str, list[float]]:
    """Generated page `i` and the values written on it."""
    rng = random.Random(i)
    planted: list[float] = []
    parts = [f"<h1>Report {chr(65 + i)}</h1>"]
    kind = i % 4
    numbers = formats(rng)
    if kind == 0:  # cards
        cells = []
        for j, (shown, value) in enumerate(numbers):
            cells.append(card(rng, LABELS[j], shown, j))
            planted.append(value)
        parts.append(f'<section id="stats">{"".join(cells)}</section>')
    elif kind == 1:  # a table with headers
        rows = []
        for j in range(0, len(numbers), 2):
            (a, va), (b, vb) = numbers[j], numbers[j + 1]
            rows.append(f"<tr><td>{LABELS[j]}</td><td>{a}</td><td>{b}</td></tr>")
            planted += [va, vb]
        parts.append(
            f'<table class="data {GENERATED[0]}"><thead><tr><th>Name</th><th>This week</th>'
            f"<th>Last week</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    elif kind == 2:  # nested lists
        items = []
        for j in range(0, len(numbers), 4):
            inner = "".join(
                f"<li><em>{LABELS[j + k]}</em>: <strong>{shown}</strong></li>"
                for k, (shown, _) in enumerate(numbers[j : j + 4])
            )
            planted += [v for _, v in numbers[j : j + 4]]
            items.append(f"<li>Group {chr(97 + j)}<ul class='inner'>{inner}</ul></li>")
        parts.append(f"<ul class='groups'>{''.join(items)}</ul>")
    else:  # sentences and a definition list, two numbers in one sentence
        (a, va), (b, vb) = numbers[0], numbers[1]
        parts.append(f"<p class='summary'>We sold {a} seats out of {b} planned</p>")
        planted += [va, vb]
        terms = "".join(f"<dt>{LABELS[j]}</dt><dd>{s}</dd>" for j, (s, _) in enumerate(numbers[2:]))
        planted += [v for _, v in numbers[2:]]
        parts.append(f"<dl>{terms}</dl>")
    # numbers nobody sees: never listed
    parts.append("<script>var total = 987654;</script><div hidden>31337</div>")
    lang = "en"
    if i == 7:  # a German page: "1.234,5" is one thousand two hundred thirty-four and a half
        lang = "de"
        parts = ['<p class="de-total">Gesamt: 1.234,5</p><p class="de-pct">Quote 12,5 %</p>']
        planted = [1234.5, 12.5]
    body = "".join(parts)
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><title>Page {i}</title></head>'
        f"<body><main>{body}</main></body></html>",
        planted,
    )


JSON_DOC = {
    "data": {
        "customers": {"paying": 142, "trial": 48, "churned-last-week": 3},
        "revenue": {"mrr": 12_500.5, "currency": "EUR"},
        "plans": [{"name": "pro", "seats": 17}, {"name": "team", "seats": 9}],
        "active": True,
        "growth": "12,374",
    }
}
# worked out by hand: every numeric leaf, its JMESPath
JSON_LEAVES = {
    "data.customers.paying": 142.0,
    "data.customers.trial": 48.0,
    'data.customers."churned-last-week"': 3.0,
    "data.revenue.mrr": 12_500.5,
    "data.plans[0].seats": 17.0,
    "data.plans[1].seats": 9.0,
    "data.growth": 12_374.0,
}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    app = web.Application()

    async def generated(request: web.Request) -> web.Response:
        html, _ = page(int(request.match_info["i"]))
        return web.Response(text=html, content_type="text/html")

    async def data(request: web.Request) -> web.Response:
        return web.json_response(JSON_DOC)

    async def moved(request: web.Request) -> web.Response:
        html = '<html><head><meta http-equiv="refresh" content="0; url=/p/7"></head></html>'
        return web.Response(text=html, content_type="text/html")

    app.router.add_get("/p/{i:\\d+}", generated)

    async def data_with_bom(request: web.Request) -> web.Response:
        # as Windows tools write JSON: a byte order mark first, served as plain text
        body = "\ufeff" + json.dumps(JSON_DOC)
        return web.Response(body=body.encode(), content_type="text/plain")

    async def german(request: web.Request) -> web.Response:
        # a German API: strings as de writes them ("12,374" reads two ways there)
        body = {"umsatz": "1.234,5", "kunden": 142, "quote": "12,5 %", "growth": "12,374"}
        return web.json_response(body)

    app.router.add_get("/api/stats", data)
    app.router.add_get("/api/german", german)

    async def extreme(request: web.Request) -> web.Response:
        # numbers no double holds: a run reads them exactly and refuses them
        body = '{"tiny": 1e-400, "huge": -1e400, "users": 42}'
        return web.Response(text=body, content_type="application/json")

    app.router.add_get("/api/extreme", extreme)
    app.router.add_get("/api/bom", data_with_bom)
    app.router.add_get("/moved", moved)
    with BackgroundServer(app) as url:
        yield url


def probed(folder: Path, *args: str) -> dict[str, Any]:
    result = run_kpi(folder, "probe", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def selects_one(html: str, selector: str) -> str:
    """The text of the one element `selector` selects, by lxml's cssselect."""
    import lxml.html
    from lxml.cssselect import CSSSelector

    found = CSSSelector(selector)(lxml.html.document_fromstring(html))
    assert len(found) == 1, f"{selector!r} selects {len(found)} elements"
    return " ".join(found[0].text_content().split())


def test_every_listed_selector_run_by_kpi_run_gives_the_listed_value(
    site: str, tmp_path: Path
) -> None:
    sources = []
    listed: dict[str, float] = {}
    for i in range(PAGES):
        html, planted = page(i)
        document = probed(tmp_path, f"{site}/p/{i}")
        findings = document["findings"]
        assert document["kind"] == "html"
        values = Counter(f["value"] for f in findings)
        # every number put on the page is found, with its value as a person reads it
        assert not Counter(planted) - values, (i, planted, sorted(values))
        assert 987654.0 not in values and 31337.0 not in values  # invisible text
        metrics = {}
        for finding in findings:
            selector = finding["selector"]
            assert not any(g in selector for g in GENERATED), selector
            assert finding["text"].replace("\u2212", "-").strip("()$-") in selects_one(
                html, selector
            ).replace("\u2212", "-")
            # the YAML line says the same as the metric
            assert yaml.safe_load(finding["yaml"]) == {finding["name"]: finding["metric"]}
            metrics[finding["name"]] = finding["metric"]
            listed[f"p{i}.{finding['name']}"] = finding["value"]
        sources.append(
            {"name": f"p{i}", "type": "html", "url": f"{site}/p/{i}", "metrics": metrics}
        )
    config = {"defaults": {"timeout": 10, "retries": 0}, "sources": sources}
    (tmp_path / "kpi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        stored = dict(db.execute("SELECT kpi, value FROM observations").fetchall())
    assert stored == listed


def test_selectors_are_short_and_prefer_names(site: str, tmp_path: Path) -> None:
    findings = probed(tmp_path, f"{site}/p/0")["findings"]
    by_selector = {f["selector"] for f in findings}
    # an element with a data-testid is named by it, not by its place
    assert '[data-testid="stat-downloads"]' in by_selector
    # cards without one: the section's id, then the shortest way down to the value
    assert all(s.startswith(("#stats", "[data-testid", "h1", "main")) for s in by_selector)
    assert all(len(s) <= 60 for s in by_selector)


def test_grep_keeps_the_numbers_whose_label_matches(site: str, tmp_path: Path) -> None:
    everything = probed(tmp_path, f"{site}/p/3")["findings"]
    kept = probed(tmp_path, f"{site}/p/3", "--grep", "planned")["findings"]
    # "planned" is in the sentence that holds two numbers, and nowhere else
    assert kept == [f for f in everything if f["selector"] == ".summary"]
    assert len(kept) == 2 < len(everything)
    churn = probed(tmp_path, f"{site}/p/3", "--grep", "CHURN")["findings"]
    assert [f["label"] for f in churn] == ["Churn"]


def test_two_numbers_in_one_sentence_each_get_a_regex(site: str, tmp_path: Path) -> None:
    _, planted = page(3)
    findings = probed(tmp_path, f"{site}/p/3")["findings"]
    sentence = [f for f in findings if f["selector"] == ".summary"]
    assert [f["value"] for f in sentence] == planted[:2]
    assert all("regex" in f["metric"] for f in sentence)


def test_german_page_reads_by_its_lang(site: str, tmp_path: Path) -> None:
    findings = probed(tmp_path, f"{site}/p/7")["findings"]
    assert [(f["selector"], f["value"]) for f in findings] == [
        (".de-total", 1234.5),
        (".de-pct", 12.5),
    ]


def test_a_page_that_sends_on_with_a_meta_refresh_is_probed_where_it_sends(
    site: str, tmp_path: Path
) -> None:
    """`kpi probe` reads the page a `<meta http-equiv=refresh>` names, as `kpi run` does."""
    document = probed(tmp_path, f"{site}/moved")
    assert document["url"] == f"{site}/p/7"
    assert [(f["selector"], f["value"]) for f in document["findings"]] == [
        (".de-total", 1234.5),
        (".de-pct", 12.5),
    ]


def test_json_every_numeric_leaf_with_its_jmespath(site: str, tmp_path: Path) -> None:
    document = probed(tmp_path, f"{site}/api/stats")
    assert document["kind"] == "json"
    assert {f["jmespath"]: f["value"] for f in document["findings"]} == JSON_LEAVES
    yaml_out = run_kpi(tmp_path, "probe", f"{site}/api/stats", "--format", "yaml")
    block = yaml.safe_load(yaml_out.stdout)
    assert {m["jmespath"] for m in block["metrics"].values()} == set(JSON_LEAVES)


def test_the_listed_lines_say_which_source_type_reads_them(site: str, tmp_path: Path) -> None:
    """`kpi probe URL` of a JSON answer listed `jmespath:` lines without saying they belong
    in a `type: http_json` source (an `html` source, the probe's default, has no jmespath)."""
    table = run_kpi(tmp_path, "probe", f"{site}/api/stats", env={"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert "in a source of `type: http_json`" in table.stdout
    yaml_out = run_kpi(tmp_path, "probe", f"{site}/api/stats", "--format", "yaml").stdout
    assert yaml_out.splitlines()[0].endswith("in a source of `type: http_json`")
    assert yaml.safe_load(yaml_out)["metrics"]  # still a block to paste
    page = run_kpi(tmp_path, "probe", f"{site}/p/0", env={"COLUMNS": "250"})
    assert "in a source of `type: html`" in page.stdout


def test_probe_of_a_source_needs_only_its_own_variables(site: str, tmp_path: Path) -> None:
    """`kpi probe --source page` failed on `${CRM_TOKEN}` of another source (and on a
    destination's variable), though it fetches only `page`."""
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        f"  - {{name: page, type: html, url: '{site}/p/0', metrics: {{a: '#a'}}}}\n"
        f"  - {{name: crm, type: http_json, url: '{site}/api/stats', "
        "auth: {bearer: '${CRM_TOKEN}'}, metrics: {a: a}}\n"
        "destinations:\n  - {type: slack, webhook_url: '${SLACK_HOOK}'}\n"
    )
    assert probed(tmp_path, "--source", "page")["findings"]
    crm = run_kpi(tmp_path, "probe", "--source", "crm")
    assert crm.returncode == 2 and "${CRM_TOKEN}, which is not set" in crm.stderr


def test_json_served_as_text_with_a_byte_order_mark_is_probed_as_json(
    site: str, tmp_path: Path
) -> None:
    document = probed(tmp_path, f"{site}/api/bom")
    assert document["kind"] == "json"
    assert {f["jmespath"]: f["value"] for f in document["findings"]} == JSON_LEAVES


def test_the_demo_pages_give_the_demo_metrics(tmp_path: Path) -> None:
    with BackgroundServer(make_app()) as url:
        write_demo_folder(tmp_path, url)
        today = datetime.now(UTC).date()
        podcast = probed(tmp_path, "--source", "podcast")["findings"]
        assert [(f["metric"], f["value"]) for f in podcast] == [
            ({"css": "#total-downloads"}, metric("downloads", today))
        ]
        crm = probed(tmp_path, "--source", "crm")["findings"]
        paying = [f for f in crm if f["jmespath"] == "data.customers.paying"]
        assert [f["value"] for f in paying] == [metric("paying", today)]
        blog = run_kpi(tmp_path, "probe", "--source", "github")
    assert blog.returncode == 2
    assert "probe reads html and http_json sources" in blog.stderr


def test_probe_needs_a_url_or_a_source(tmp_path: Path) -> None:
    result = run_kpi(tmp_path, "probe")
    assert result.returncode == 2
    assert "give a URL, or --source NAME" in result.stderr


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "not an http(s) URL"),
        ("http://a b/", "holds a space"),
        ("http://", "not an http(s) URL"),
        ("http://[::1]:99999/", "port"),
        # was "has no valid port": a browser reads `\` as `/`
        ("http://127.0.0.1:8080\\stats", "holds a backslash; a URL is written with / "),
        ("http://host/a\tb", "holds a tab or line break"),  # was "holds a space"
    ],
)
def test_probe_of_a_malformed_url_is_one_line(tmp_path: Path, url: str, why: str) -> None:
    """A URL starting with http:// that is no URL (an IPv6 host never closed, a space, no
    host) ended `kpi probe` with pydantic's traceback; a port out of range with "cannot
    reach http://[::1]:99999/: http://[::1]:99999/". A usage error, exit 2, in one line."""
    done = run_kpi(tmp_path, "probe", url)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for URL: ")
    assert why in lines[0]


def test_no_suggested_metric_holds_a_secret_the_page_shows() -> None:
    from kpi_collector.collect.probe import probe_html
    from kpi_collector.secrets import remember

    account = "acmecorporationltd"  # the config's secret `${ACCOUNT}`, echoed by the page
    remember(account)
    page = (
        f'<p>Signed in as {account}: 3 alerts, 12 tasks</p><ul><li data-name="{account}">'
        f'<b>{account}</b> <i>1,234</i></li><li data-name="other"><i>5</i></li></ul>'
    )
    findings = probe_html(page)
    assert sorted(f.value for f in findings) == [3, 5, 12, 1234]
    for finding in findings:
        assert account not in json.dumps(finding.as_dict())


def test_a_number_whose_scale_is_in_the_next_element_is_read_whole() -> None:
    # dashboards draw the scale apart: `<b>1.2</b><small>M</small>` shows 1.2M, not 1.2
    from kpi_collector.collect.extract import HtmlDocument, Metric
    from kpi_collector.collect.probe import probe_html

    page = (
        '<div class="kpi"><h3>Revenue</h3><p id="rev"><b>1.2</b><small>M</small></p></div>'
        '<div class="kpi"><h3>Users</h3><p id="users"><span>12</span> <span>k</span></p></div>'
        '<div class="kpi"><h3>Seats</h3><p id="seats"><b>40</b> <small>left</small></p></div>'
    )
    findings = probe_html(page)
    assert [(f.value, f.label) for f in findings] == [
        (1_200_000, "Revenue"),
        (12_000, "Users"),
        (40, "left"),
    ]
    document = HtmlDocument(page)
    for finding in findings:
        assert document.metric("m", Metric(**finding.metric)) == finding.value


def test_json_strings_written_as_amounts_are_listed_as_the_extractor_reads_them() -> None:
    from kpi_collector.collect.extract import Metric, from_json
    from kpi_collector.collect.probe import probe_json

    document = {
        "revenue": "$1,234.56",
        "users": "1.2k",
        "loss": "(1,234)",
        "fee": "EUR 12.50",
        "arr": "2.5 million",
        "share": "12.5%",
        # not amounts: names, codes, versions, dates, phone numbers
        "quarter": "Q1",
        "id": "abc123",
        "version": "2.0.1",
        "day": "2024-01-05",
        "phone": "+1 555 0100",
    }
    findings = probe_json(document)
    assert {f.jmespath: f.value for f in findings} == {
        "revenue": 1234.56,
        "users": 1200.0,
        "loss": -1234.0,
        "fee": 12.5,
        "arr": 2_500_000.0,
        "share": 12.5,
    }
    for finding in findings:
        assert from_json("m", document, Metric(**finding.metric)) == finding.value


def test_a_number_whose_sign_is_in_the_element_before_is_not_listed_unsigned() -> None:
    # `<i>−</i><b>5</b>` shows −5: listing `b` as 5 would store the wrong sign
    from kpi_collector.collect.probe import probe_html

    page = (
        '<p id="change">Change <i class="sign">\u2212</i><b class="num">5</b>%</p>'
        '<p id="net">Net <span>(</span><span class="n">1,200</span><span>)</span></p>'
        "<table><tr><td>-</td><td>7</td></tr></table>"  # a dash cell beside a number cell
        '<p>Plan <span>Pro (</span><b id="seats">12</b><span> seats)</span></p>'
    )
    listed = {f.value for f in probe_html(page)}
    assert 5 not in listed and 1200 not in listed
    assert {7, 12} <= listed


def test_a_json_source_with_a_locale_is_probed_as_its_run_reads_it(
    site: str, tmp_path: Path
) -> None:
    """`kpi probe --source NAME` of an `http_json` source with `locale: de` listed its JSON
    strings read as en: `"growth": "12,374"` as 12374, a line the run then refused as
    reading two ways (and `"1.234,5"`, which de reads as 1234.5, was left out). Each line
    listed, put in the config and run, stores the value listed."""
    config = {
        "sources": [
            {
                "name": "crm",
                "type": "http_json",
                "url": f"{site}/api/german",
                "locale": "de",
                "metrics": {"kunden": "kunden"},  # the one the user knows already
            }
        ]
    }
    (tmp_path / "kpi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    findings = probed(tmp_path, "--source", "crm")["findings"]
    listed = {f["jmespath"]: f["value"] for f in findings}
    assert listed == {"umsatz": 1234.5, "kunden": 142.0, "quote": 12.5}
    config["sources"][0]["metrics"] = {f["name"]: f["metric"] for f in findings}
    (tmp_path / "kpi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert stored_values(tmp_path) == {f"crm.{f['name']}": f["value"] for f in findings}


def test_listed_lines_read_the_same_in_a_config_of_another_locale(
    site: str, tmp_path: Path
) -> None:
    """A line `kpi probe URL` lists is read as probe read it wherever it is put: in a config
    whose `locale: de` (the team's own pages) it read an English page's "12,374" as 12.374
    and stored that, and refused the JSON string "12,374" as reading two ways. A line whose
    number reads by its locale names it (`locale: en`)."""
    sources = []
    listed: dict[str, float] = {}
    for name, path in (("p0", "/p/0"), ("p1", "/p/1"), ("api", "/api/stats")):
        findings = probed(tmp_path, f"{site}{path}")["findings"]
        metrics = {f["name"]: f["metric"] for f in findings}
        listed.update({f"{name}.{f['name']}": f["value"] for f in findings})
        kind = "http_json" if path.startswith("/api") else "html"
        sources.append({"name": name, "type": kind, "url": f"{site}{path}", "metrics": metrics})
    assert listed["api.data_growth"] == 12_374  # "12,374", as en writes it
    config = {"locale": "de", "defaults": {"timeout": 10, "retries": 0}, "sources": sources}
    (tmp_path / "kpi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert stored_values(tmp_path) == listed


def test_a_json_number_no_double_holds_is_not_listed(site: str, tmp_path: Path) -> None:
    """`1e-400` was listed as 0 (read as a double), a line whose run then refused it as too
    small to store; probe reads the answer exactly, as the run does."""
    findings = probed(tmp_path, f"{site}/api/extreme")["findings"]
    assert [(f["jmespath"], f["value"]) for f in findings] == [("users", 42.0)]


def test_the_table_shows_each_value_whole(site: str, tmp_path: Path) -> None:
    """The table's value column wrote `:g`, six digits: 8,864,407 was shown as 8.86441e+06,
    not the number the metric reads."""
    values = [f["value"] for f in probed(tmp_path, f"{site}/p/0")["findings"]]
    assert any(abs(v) >= 1_000_000 for v in values)
    table = run_kpi(tmp_path, "probe", f"{site}/p/0", env={"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    shown = [line.split("│")[0].strip() for line in table.stdout.splitlines() if "│" in line]
    assert [float(cell) for cell in shown] == values
    assert not any("e+" in cell for cell in shown)
