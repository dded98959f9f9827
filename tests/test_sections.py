"""Sections (`group:`), `hidden:`, a dashboard `title:` and notes (`kpi annotate`): in the
config, the overview, the reports and the messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kpi_collector.config import load_config
from kpi_collector.destinations.digest import Digest
from kpi_collector.destinations.discord import digest_messages
from kpi_collector.destinations.email import digest_html, digest_text
from kpi_collector.destinations.slack import digest_text as slack_text
from kpi_collector.errors import ConfigError
from kpi_collector.report import pages
from kpi_collector.report.data import DashboardData
from kpi_collector.report.html import render_html, render_markdown
from kpi_collector.store import HistoryStore
from tests.cli import run_kpi

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
# groups first appear in `kpis:` as Revenue, then Growth; `web.visits` has none
CONFIG = """\
title: Acme weekly
north_star: app.users
kpis:
  crm.mrr: {title: MRR, unit: USD, group: Revenue}
  app.users: {title: Users, group: Growth}
  gh.stars: {title: Stars, group: Growth}
  crm.arr: {title: ARR, formula: "crm.mrr * 12", unit: USD, group: Revenue}
  gh.internal: {title: Internal counter, hidden: true, group: Growth}
sources:
  - {name: gh, type: python, function: "tests.test_sections:gh"}
  - {name: web, type: python, function: "tests.test_sections:web"}
  - {name: app, type: python, function: "tests.test_sections:app"}
  - {name: crm, type: python, function: "tests.test_sections:crm"}
"""


def gh() -> dict[str, float]:
    return {"stars": 1647, "internal": 3}


def web() -> dict[str, float]:
    return {"visits": 900}


def app() -> dict[str, float]:
    return {"users": 120}


def crm() -> dict[str, float]:
    return {"mrr": 1000}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return build_grouped(tmp_path)


def build_grouped(tmp_path: Path) -> Path:
    """CONFIG and a store with two runs: a fortnight before NOW (half the values) and NOW."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    store = HistoryStore(load_config(tmp_path / "kpi.yaml").store_url)
    for back, scale in ((15, 0.5), (0, 1.0)):  # two runs: a fortnight ago and today
        at = (NOW - timedelta(days=back, hours=1)).timestamp()
        run = store.begin_run(started_at=at)
        values = {
            "gh.stars": 1647.0,
            "gh.internal": 3.0,
            "web.visits": 900.0,
            "app.users": 120.0,
            "crm.mrr": 1000.0,
            "crm.arr": 12000.0,
        }
        store.finish_run(
            run,
            observations=[(k, at, v * scale, k.partition(".")[0]) for k, v in values.items()],
            finished_at=at + 1,
        )
    store.close()
    return tmp_path


def test_group_hidden_and_title_are_config_keys(tmp_path: Path) -> None:
    config = load_config_text(tmp_path, CONFIG)
    assert config.title == "Acme weekly"
    assert config.kpis["gh.internal"].hidden and config.kpis["crm.mrr"].group == "Revenue"
    assert config.sections(["web.visits", "gh.stars", "crm.mrr", "app.users", "crm.arr"]) == [
        ("Revenue", ["crm.mrr", "crm.arr"]),
        ("Growth", ["app.users", "gh.stars"]),
        (None, ["web.visits"]),
    ]
    assert load_config_text(tmp_path, "sources: []\n").title == "KPIs"
    with pytest.raises(ConfigError, match="group"):
        load_config_text(tmp_path, "kpis:\n  a.b: {group: '  '}\nsources: []\n")
    with pytest.raises(ConfigError, match="hidden"):
        load_config_text(tmp_path, "kpis:\n  a.b: {hidden: maybe}\nsources: []\n")


def load_config_text(folder: Path, text: str) -> object:
    path = folder / "other.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_overview_shows_groups_in_config_order_without_hidden_kpis(folder: Path) -> None:
    from kpi_collector.store.annotations import add_annotation

    data = DashboardData(load_config(folder / "kpi.yaml"), clock=NOW.timestamp)
    try:
        add_annotation(data.store, "v1.0 released", date(2026, 11, 20))
        add_annotation(data.store, "before the sparklines", date(2026, 10, 1))
        doc = data.overview("day")
    finally:
        data.close()
    assert doc["title"] == "Acme weekly"
    assert [(s["group"], s["kpis"]) for s in doc["sections"]] == [
        ("Revenue", ["crm.mrr", "crm.arr"]),
        ("Growth", ["app.users", "gh.stars", "gh.internal"]),
        (None, ["web.visits"]),
    ]
    html = pages.overview_page(doc)
    headings = [part.split("</h2>")[0] for part in html.split('<h2 class="group">')[1:]]
    # each in <bdi>: a group's name takes its own direction (Hebrew, Arabic)
    assert headings == ["<bdi>Revenue</bdi>", "<bdi>Growth</bdi>", "<bdi>Other</bdi>"]
    growth = html.split('<h2 class="group"><bdi>Growth</bdi></h2>')[1].split("</section>")[0]
    assert 'data-kpi="gh.stars"' in growth and 'data-kpi="app.users"' not in growth  # north star
    assert 'data-kpi="gh.internal"' not in html  # hidden from the overview
    assert '<a class="brand" href="/">Acme weekly</a>' in html
    # the note of 20 November on every sparkline: day 19 of the 30 from 1 November, at
    # x = 2 + 116 * 19 / 29 = 78.0 in a tile's 120-wide box (the north star's: 2 + 296 * 19 / 29)
    assert [n["day"] for n in doc["annotations"]] == ["2026-11-20"]
    assert html.count('data-notes="1"') == 5  # 4 tiles and the north star (one is hidden)
    assert html.count('<line class="note" x1="78.0"') == 4
    assert html.count('<line class="note" x1="195.9"') == 1
    assert "<title>2026-11-20: v1.0 released</title>" in html
    assert "<title>Acme weekly</title>" in html


def test_reports_and_messages_show_groups_and_notes(folder: Path) -> None:
    config = folder / "kpi.yaml"
    noted = run_kpi(
        folder,
        "-c",
        str(config),
        "annotate",
        "v1.0 released",
        "--date",
        "2026-11-20",
        env={"COLUMNS": "120"},
    )
    assert noted.returncode == 0, noted.stderr
    assert noted.stdout.strip() == "note 1 stored for 2026-11-20: v1.0 released"
    empty = run_kpi(folder, "-c", str(config), "annotate", " ", env={"COLUMNS": "120"})
    assert empty.returncode == 2 and "the note is empty" in empty.stderr
    bad_day = run_kpi(
        folder, "-c", str(config), "annotate", "x", "--date", "2026-02-30", env={"COLUMNS": "120"}
    )
    assert bad_day.returncode == 2 and "--date" in bad_day.stderr

    markdown = render_markdown(config, period="week", compare="14d", now=NOW)
    lines = markdown.splitlines()
    assert lines[:4] == ["# KPIs — week 49, 2026", "", "## Revenue", ""]
    order = [line for line in lines if line.startswith(("## ", "- "))]
    assert order[:9] == [
        "## Revenue",
        "- **MRR**: $1,000 ⬆ 100.00%",
        "- **ARR**: $12,000 ⬆ 100.00%",
        "## Growth",
        "- **Users**: 120 ⬆ 100.00%",
        "- **Stars**: 1,647 ⬆ 100.00%",
        "- **Internal counter**: 3 ⬆ 100.00%",
        "## Other",
        "- **web.visits**: 900 ⬆ 100.00%",
    ]
    assert "## Notes" in markdown and "- 2026-11-20: v1.0 released" in markdown

    html = render_html(config, period="week", compare="14d", now=NOW)
    groups = [
        part.split("</th>")[0] for part in html.split('<tr class="group"><th colspan="4">')[1:]
    ]
    assert groups == ["<bdi>Revenue</bdi>", "<bdi>Growth</bdi>", "<bdi>Other</bdi>"]
    assert "<time>2026-11-20</time> <bdi>v1.0 released</bdi>" in html
    assert '<span class="brand">Acme weekly</span>' in html

    store = HistoryStore(load_config(config).store_url)
    try:
        specs = load_config(config).kpis
        digest = Digest.from_store(store, kpis=specs, period="week", tz="UTC", now=NOW)
    finally:
        store.close()
    (discord,) = digest_messages(digest)
    assert discord.index("__Revenue__") < discord.index("**MRR**") < discord.index("__Growth__")
    assert discord.index("__Growth__") < discord.index("**Users**") < discord.index("__Other__")
    slack = slack_text(digest)
    lines = slack.splitlines()  # the fallback text: plain lines, headings alone on theirs
    assert lines.index("Revenue") < lines.index("ARR: $12,000 ⬆ 100.00%") < lines.index("Growth")
    assert digest_text(digest).splitlines()[2:5] == ["Revenue", "-------", "MRR: $1,000 ⬆ 100.00%"]
    assert digest_html(digest).count("text-transform:uppercase") == 3


def test_notes_are_in_every_series_and_the_store_keeps_them(folder: Path) -> None:
    from kpi_collector.store.annotations import add_annotation, list_annotations

    config = load_config(folder / "kpi.yaml")
    store = HistoryStore(config.store_url)
    try:
        add_annotation(store, "pricing   page\nlaunched", date(2026, 11, 25))
        add_annotation(store, "old note", date(2025, 1, 1))
        assert [(n.day, n.text) for n in list_annotations(store, since=date(2026, 1, 1))] == [
            (date(2026, 11, 25), "pricing page launched")
        ]
        with pytest.raises(ConfigError, match="200"):
            add_annotation(store, "x" * 201, date(2026, 11, 25))
    finally:
        store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        week = data.series("gh.stars", "week", date(2026, 11, 1))
        assert [(n["day"], n["at"], n["text"]) for n in week["annotations"]] == [
            ("2026-11-25", "2026-11-23", "pricing page launched")  # in the week of Monday 23rd
        ]
        everything = data.series("crm.mrr", "day", None)
        assert [n["day"] for n in everything["annotations"]] == ["2025-01-01", "2026-11-25"]
    finally:
        data.close()


def test_a_delivered_message_shows_the_groups_in_config_order(tmp_path: Path) -> None:
    """A run delivers to a local Discord stand-in: the message has each group's heading in
    `kpis:` order, its KPIs under it, and the KPIs without a group last under "Other"."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Discord, Store
    from kpi_collector.destinations.discord.fake import FakeDiscord
    from kpi_collector.sources.python import Function

    token = "hook-token-sections-1"
    with FakeDiscord.serve(token) as hooks:
        pipeline = Pipeline(
            sources=[Function(lambda: {"stars": 5.0, "mrr": 7.0, "misc": 1.0}, name="g")],
            destinations=[
                Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
                Discord(webhook_url=hooks.discord_url, retries=0),
            ],
            kpis={
                "g.mrr": {"title": "MRR", "group": "Revenue"},
                "g.stars": {"title": "Stars", "group": "Community"},
            },
            base_dir=tmp_path,
        )
        result = pipeline.process(now=NOW)
        assert result.exit_code == 0, result.delivery_errors
        (message,) = [m["content"] for m in hooks.discord]
    assert message.splitlines()[1:] == [
        "",
        "__Revenue__",
        "**MRR**: 7",
        "",
        "__Community__",
        "**Stars**: 5",
        "",
        "__Other__",
        "**g.misc**: 1",
    ]
