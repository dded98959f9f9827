"""`kpi report`: one self-contained HTML file, or the Markdown digest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kpi_collector.report.html import parse_compare, render_html, write_report
from tests.cli import run_kpi
from tests.test_dashboard import NOW, SECRET, XSS, build_store


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("report"))


def test_html_report_is_one_self_contained_file(config_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run_kpi(
        config_path.parent,
        "-c",
        str(config_path),
        "report",
        "--period",
        "week",
        "--compare",
        "14d",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "links to another host"
    assert "<link" not in html and "<script src" not in html and "@import" not in html
    assert "var uPlot=" in html  # the chart library inline
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SECRET not in html
    assert "Paying customers" in html and "Changes against 14 days earlier" in html
    assert html.count('class="chart" data-index=') == 3


def test_html_report_values_and_changes(config_path: Path) -> None:
    html = render_html(config_path, period="week", compare="14d", now=NOW)
    row = re.search(r'<tr data-kpi="crm.paying">(.*?)</tr>', html)
    assert row is not None
    assert ">999<" in row.group(1)
    assert "+" in row.group(1) and "%" in row.group(1)  # against the value 14 days earlier
    assert "web" in html and "HTTP 500" in html  # the failing source
    assert "Changes against 14 days earlier." in html


def test_html_report_says_one_day_not_1_days(config_path: Path) -> None:
    """`--compare 1d` wrote "Changes against 1 days earlier." under the table."""
    html = render_html(config_path, period="day", compare="1d", now=NOW)
    assert "Changes against 1 day earlier." in html and "1 days" not in html


def test_markdown_report_is_the_digest(config_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    result = run_kpi(config_path.parent, "-c", str(config_path), "report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    from kpi_collector.config import load_config
    from kpi_collector.destinations.digest import Digest
    from kpi_collector.report.markdown import digest_markdown
    from kpi_collector.store import HistoryStore

    assert text.startswith("# ")
    assert "**Paying customers**: 999" in text
    assert "Failing sources" in text and SECRET not in text
    config = load_config(config_path)
    store = HistoryStore(config.store_url)
    digest = Digest.from_store(
        store,
        kpis=config.kpis,
        north_star="crm.paying",
        period="week",
        compare_days=14,
        tz=config.tz,
    )
    store.close()
    assert text == digest_markdown(digest)


def test_write_report_as_kpi_demo_calls_it(config_path: Path, tmp_path: Path) -> None:
    out = write_report(config_path, tmp_path / "demo" / "report.html")
    assert out.exists() and out.read_text(encoding="utf-8").startswith("<!doctype html>")
    with pytest.raises(ValueError, match=r"\.html or \.md"):
        write_report(config_path, tmp_path / "report.pdf")


def test_bad_options_exit_2(config_path: Path, tmp_path: Path) -> None:
    for args in (
        ("--out", str(tmp_path / "r.pdf")),
        ("--compare", "two weeks"),
        ("--period", "year"),
        ("--compare", "99999999d"),  # was a traceback: the date overflowed
        ("--compare", "999999999999999999999d"),
    ):
        result = run_kpi(config_path.parent, "-c", str(config_path), "report", *args)
        assert result.returncode == 2, args


def test_parse_compare() -> None:
    assert (
        parse_compare("14d") == 14 and parse_compare("0d") is None and parse_compare(None) is None
    )
    with pytest.raises(ValueError):
        parse_compare("14")
    assert parse_compare("36600d") == 36600 and parse_compare(36600) == 36600
    with pytest.raises(ValueError, match="not a number of days"):
        parse_compare("²d")  # a digit to isdigit(), not to int()
    for too_far in ("36601d", "99999999d", 10**30):
        with pytest.raises(ValueError, match="at most 36600d"):
            parse_compare(too_far)
    with pytest.raises(ValueError):
        parse_compare(-1)


def test_markdown_report_shows_titles_as_text(tmp_path: Path) -> None:
    """A KPI title, group or unit went into the Markdown report as is:
    `<img onerror=...>` became HTML, `[x](javascript:...)` a link, `*`/`_` bold or italics
    where a viewer renders the file. Now every user text is escaped and reads as typed."""
    from datetime import timedelta

    from kpi_collector.config import load_config
    from kpi_collector.report.html import render_markdown
    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "kpis:\n"
        '  web.a: {title: "<img src=x onerror=alert(1)> [click](javascript:alert(2))",'
        ' group: "*Team* <i>A</i>"}\n'
        '  web.b: {title: "snake_case_name *starred*", unit: "req_per_s", group: "*Team* <i>A</i>"}\n'
        '  web.c: {title: "two\\n\\n# Hacked heading\\n- [x](http://evil.example)"}\n'
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {a: d.a, b: d.b, c: d.c}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    for days, value in ((10, 1.0), (1, 2.0)):
        at = (NOW - timedelta(days=days)).timestamp()
        run = store.begin_run(started_at=at)
        store.finish_run(run, observations=[(f"web.{k}", at, value, "web") for k in "abc"])
    store.close()
    text = render_markdown(config, now=NOW)
    # no HTML tag, link or emphasis made of the user's text
    assert not re.search(r"(?<!\\)<[a-z/]", text)
    assert "](" not in text.replace("\\](", "")
    unescaped = re.sub(r"\\.", "", text).replace("**", "")
    assert "*" not in unescaped and "_" not in re.sub(r"^_|_$", "", unescaped, flags=re.M)
    # and what is left reads as typed once the backslashes go (as a viewer shows it)
    shown = re.sub(r"\\(.)", r"\1", text)
    assert shown.startswith("# KPIs — week 14, 2026\n")
    assert "## *Team* <i>A</i>" in shown
    assert "**<img src=x onerror=alert(1)> [click](javascript:alert(2))**: 2" in shown
    assert "**snake_case_name *starred***: 2 req_per_s" in shown
    # a line break in a title is a space: it cannot start a heading or a list item
    assert "**two # Hacked heading - [x](http://evil.example)**: 2" in shown
    assert not [line for line in text.splitlines() if line.startswith(("# H", "- ["))]


def test_a_percent_kpi_changes_in_points_on_the_dashboard_and_the_report() -> None:
    """A KPI with unit `%` (59.5 then 60) changed by "+0.5% (+0.84%)" on the dashboard's tiles
    and the HTML report's table: two percents, the first of them in fact points. It reads
    "+0.5 pp (+0.84%)" now, as a `ratio` does."""
    from kpi_collector.format import format_change

    assert format_change(60.0, 59.5, "%") == "+0.5 pp (+0.84%)"
    assert format_change(59.5, 60.0, "%") == "-0.5 pp (-0.83%)"
    assert format_change(0.25, 0.2, "ratio") == "+5 pp (+25.00%)"
    assert format_change(12.0, 0.0, "%") == "+12 pp"
    assert format_change(1647.0, 1620.0) == "+27 (+1.67%)"


def test_a_group_ending_in_a_hash_keeps_it_in_the_markdown_heading(tmp_path: Path) -> None:
    """A group `Channel #` became the heading `## Channel #`, and CommonMark reads a closing
    run of `#` after a space as the heading's optional end: the report said "Channel". A `#`
    of user text is escaped now and the heading reads as the group is written."""
    from datetime import timedelta

    from markdown_it import MarkdownIt

    from kpi_collector.config import load_config
    from kpi_collector.report.html import render_markdown
    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "kpis:\n"
        '  web.a: {title: "Issues #", group: "Channel #"}\n'
        '  web.b: {title: "Team ##", group: "Rank ###"}\n'
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {a: d.a, b: d.b}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    at = (NOW - timedelta(days=1)).timestamp()
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[("web.a", at, 1.0, "web"), ("web.b", at, 2.0, "web")])
    store.close()
    html = MarkdownIt("commonmark").render(render_markdown(config, now=NOW))
    assert "<h2>Channel #</h2>" in html and "<h2>Rank ###</h2>" in html
    assert "<strong>Issues #</strong>" in html and "<strong>Team ##</strong>" in html
