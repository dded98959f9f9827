"""The digest every message destination sends: ordering, formatting, markers, percentages,
failures; and each medium's rendering of it: Discord's 2000-character split, Slack Block Kit,
the email's text and HTML, the Markdown report."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.config.models import KpiSpec
from kpi_collector.destinations import discord, email, slack
from kpi_collector.destinations.base import Delivery
from kpi_collector.destinations.digest import Digest, DigestError, DigestLine, digest_title
from kpi_collector.destinations.text import kpi_line, split_lines
from kpi_collector.errors import DeliveryError
from kpi_collector.report.markdown import digest_markdown
from kpi_collector.store import HistoryStore

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday of ISO week 49


def delivery(**kwargs: object) -> Delivery:
    base: dict[str, object] = {
        "period": "2026-W48",
        "period_start": date(2026, 11, 23),
        "run_id": 3,
        "values": {
            "pypi.downloads": 12374.0,
            "github.stars": 1647.0,
            "revenue.mrr": 1200.0,
            "github.forks": 12.0,
        },
        "timestamps": {},
        "kpis": {
            "github.stars": KpiSpec(title="GitHub Stargazers"),
            "revenue.mrr": KpiSpec(title="MRR", unit="USD"),
        },
        "order": ["github.stars", "revenue.mrr", "github.forks", "pypi.downloads"],
        "tz": ZoneInfo("Europe/Berlin"),
        "now": NOW,
        "previous": {"github.stars": 1620.0, "pypi.downloads": 12800.0, "github.forks": 12.0},
        "errors": [
            ("podcast", "login refused by https://podcasts.example/login: check the login fields")
        ],
        "every": "week",
        "compare_days": 14,
    }
    base.update(kwargs)
    return Delivery(**base)  # type: ignore[arg-type]


def test_lines_like_the_reference_system() -> None:
    digest = Digest.from_delivery(delivery())
    assert digest.title == "KPIs — week 48, 2026"
    assert [kpi_line(line, "**") for line in digest.lines] == [
        "**GitHub Stargazers**: 1,647 ⬆ 1.67%",
        "**MRR**: $1,200",
        "**github.forks**: 12 ➡ 0.00%",
        "**pypi.downloads**: 12,374 ⬇ 3.33%",
    ]


def test_without_compare_there_are_no_markers() -> None:
    digest = Digest.from_delivery(delivery(compare_days=None))
    assert kpi_line(digest.lines[0], "**") == "**GitHub Stargazers**: 1,647"
    assert "Changes against" not in email.digest_text(digest)


def test_titles_per_period() -> None:
    local = datetime(2026, 11, 29, 8, 5)
    assert digest_title("week", date(2026, 11, 23), local) == "KPIs — week 48, 2026"
    assert digest_title("day", date(2026, 11, 29), local) == "KPIs — 29 November 2026"
    assert digest_title("month", date(2026, 11, 1), local) == "KPIs — November 2026"
    assert digest_title("run", date(2026, 11, 29), local) == "KPIs — 29 November 2026, 08:05"


def test_change_from_zero_has_a_marker_but_no_percent() -> None:
    line = DigestLine("a.b", "Signups", 5.0, None, 0.0)
    assert kpi_line(line, "**") == "**Signups**: 5 ⬆"
    assert (line.direction, line.change_percent, line.formatted) == ("up", None, "5")


def test_failures_come_last_in_every_rendering() -> None:
    digest = Digest.from_delivery(delivery())
    for text in (
        email.digest_text(digest),
        digest_markdown(digest),
        slack.digest_text(digest),
        discord.digest_messages(digest)[-1],
        email.digest_html(digest),
    ):
        assert text.index("podcast") > text.index("pypi.downloads")


def test_discord_split_keeps_every_line_under_2000_chars() -> None:
    values = {f"src.kpi_{i:03d}": float(i * 1000) for i in range(150)}
    d = delivery(values=values, order=list(values), previous={}, errors=[])
    messages = discord.digest_messages(Digest.from_delivery(d))
    assert len(messages) > 1
    assert all(len(m) <= 2000 for m in messages)
    joined = "\n".join(messages)
    assert all(f"**src.kpi\\_{i:03d}**:" in joined for i in range(150))  # `_` escaped
    assert messages[0].startswith("**KPIs — week 48, 2026**")
    # lines are never broken in the middle
    assert all(line.startswith("**") for m in messages for line in m.splitlines())


def test_split_lines_cuts_a_line_longer_than_the_limit() -> None:
    assert split_lines(["x" * 30, "y"], 10) == ["x" * 9 + "…", "y"]


def test_slack_blocks_are_valid_block_kit() -> None:
    digest = Digest.from_delivery(delivery(errors=[("crm", "HTTP 500 <b>boom</b> & more")]))
    blocks = slack.digest_blocks(digest)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "KPIs — week 48, 2026", "emoji": True},
    }
    assert blocks[1]["type"] == "rich_text"
    [section] = blocks[1]["elements"]
    assert section["elements"][:2] == [
        {"type": "text", "text": "GitHub Stargazers", "style": {"bold": True}},
        {"type": "text", "text": ": 1,647 ⬆ 1.67%\n"},
    ]
    texts = [t for b in blocks for t in slack.block_texts(b)]
    assert "• crm: HTTP 500 <b>boom</b> & more" in "\n".join(texts)  # rich text: as written
    assert blocks[-1]["type"] == "context"
    assert all(len(t) <= 3000 for b in blocks for t in slack.block_texts(b))
    assert "GitHub Stargazers: 1,647 ⬆ 1.67%" in slack.digest_text(digest)
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; more" in slack.digest_text(digest)


def test_markdown_and_html() -> None:
    digest = Digest.from_delivery(delivery(errors=[("crm", "bad <token> @everyone")]))
    markdown = digest_markdown(digest)
    assert markdown.startswith("# KPIs — week 48, 2026\n\n- **GitHub Stargazers**: 1,647 ⬆ 1.67%\n")
    assert "## Failing sources" in markdown and "@\u200beveryone" in markdown
    html = email.digest_html(digest)
    assert "<b>GitHub Stargazers</b>" in html and "&lt;token&gt;" in html and "<token>" not in html


def test_from_store_for_kpi_report(tmp_path: Path) -> None:
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    old = NOW.timestamp() - 15 * 86400
    store.add_observations(
        [("github.stars", old, 1600.0, "github"), ("blog.posts", old, 40.0, "blog")],
        backfilled=True,
    )
    run = store.begin_run(started_at=NOW.timestamp())
    store.finish_run(
        run,
        observations=[
            ("github.stars", NOW.timestamp(), 1648.0, "github"),
            ("blog.posts", NOW.timestamp(), 41.0, "blog"),
        ],
        errors=[("podcast", None, "login refused", False)],
    )
    digest = Digest.from_store(
        store,
        kpis={"github.stars": KpiSpec(title="GitHub Stargazers")},
        north_star="github.stars",
        period="week",
        compare_days=14,
        tz="Europe/Berlin",
        now=NOW,
    )
    assert digest.title == "KPIs — week 49, 2026"
    assert [kpi_line(line, "**") for line in digest.lines] == [
        "**GitHub Stargazers**: 1,648 ⬆ 3.00%",
        "**blog.posts**: 41 ⬆ 2.50%",
    ]
    assert digest.errors == [DigestError("podcast", "login refused")]


def test_the_shared_text_helpers() -> None:
    from kpi_collector.destinations.text import cut, escape_html, escape_markdown, escape_slack

    assert cut("abcdef", 6) == "abcdef" and cut("abcdefg", 6) == "abcde…"
    assert escape_markdown("@here `x` *b* _i_") == "@\u200bhere \\`x\\` \\*b\\* \\_i\\_"
    assert (
        escape_slack("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
    )
    assert escape_html("<a href='x'>&</a>") == "&lt;a href=&#x27;x&#x27;&gt;&amp;&lt;/a&gt;"


def test_an_error_is_one_line_cut_to_300_characters() -> None:
    error = DigestError("crm", "boom\n  token=abc " + "x" * 400)
    assert error.text(limit=None) == "crm: boom token=abc " + "x" * 400
    assert error.text() == "crm: " + ("boom token=abc " + "x" * 400)[:299] + "…"


def test_a_title_too_long_for_one_message_is_cut_never_the_value() -> None:
    """A line longer than the medium's limit (Discord 2000, a Slack section 3000) loses the
    end of its title, not its value."""
    values = {"src.long": 1647.0}
    d = delivery(values=values, order=list(values), previous={}, errors=[])
    d.kpis["src.long"] = KpiSpec(title="T" * 3500)
    digest = Digest.from_delivery(d)
    messages = discord.digest_messages(digest)  # the title, then the line: 2000 alone
    assert messages[0] == "**KPIs — week 48, 2026**"
    line = messages[1]
    assert len(line) == 2000 and line == "**" + "T" * 1988 + "…**: 1,647"
    [section] = slack.block_texts(slack.digest_blocks(digest)[1])
    assert len(section) == 3000 and section == "T" * 2992 + "…: 1,647"


def test_unsent_resumes_after_the_parts_sent_only_while_they_are_the_same() -> None:
    """`Delivery.unsent`: after `checkpoint(2)` a rebuilt delivery with the same parts goes on
    at part 3; parts that changed (or fewer parts than were sent) are refused for good
    (no repeat, no skip), unless the parts are upserts, which start over."""
    from kpi_collector.destinations.base import plan_fingerprint

    first = delivery(destination="chat")
    assert first.unsent(["a", "b", "c"]) == [(0, "a"), (1, "b"), (2, "c")]
    asyncio.run(first.checkpoint(2))
    assert first.sent_plan == plan_fingerprint(["a", "b"])
    assert first.sent_plan != plan_fingerprint(["ab"])  # part boundaries count

    def again() -> Delivery:
        return delivery(destination="chat", progress=2, sent_plan=first.sent_plan)

    assert again().unsent(["a", "b", "c2", "d"]) == [(2, "c2"), (3, "d")]
    for changed in (["a", "B", "c"], ["a"]):
        with pytest.raises(DeliveryError) as caught:
            again().unsent(changed)
        assert caught.value.refused and "--from-start" in str(caught.value)
    upsert = again()
    assert upsert.unsent(["x", "b", "c"], idempotent=True) == [(0, "x"), (1, "b"), (2, "c")]
    assert upsert.progress == 0
    legacy = delivery(progress=2)  # a row from before fingerprints: resumed by count
    assert legacy.unsent([{"k": 1}, {"k": 2}, {"k": 3}]) == [(2, {"k": 3})]
    with pytest.raises(DeliveryError):
        delivery(progress=2).unsent(["only one"])


#: titles a team may give KPIs, each holding what a chat would format, link or ping
MARKUP_TITLES = [
    "<!channel> *revenue*",
    "a_b_c",
    "~strike~ `code` [link](http://x.example) <@123>",
    "||spoiler|| \\*already\\* _x_",
    "# heading",
    "> quote",
    "- item",
    "1. first",
    "R&D <b>",
    "🚀 Émojis & ünïcode ✅",
]


def _markup_delivery() -> Delivery:
    values = {f"src.k{i}": float(i + 1) for i in range(len(MARKUP_TITLES))}
    kpis = {f"src.k{i}": KpiSpec(title=t) for i, t in enumerate(MARKUP_TITLES)}
    return delivery(values=values, order=list(values), kpis=kpis, previous={}, errors=[])


def test_discord_titles_show_literally() -> None:
    """A title like `<!channel> *revenue*` or `a_b_c` went into the Discord message as it
    was, between the `**` of the bold title: its `*`, `_`, `~`, `` ` ``, `||`, `<@id>` or
    `[text](url)` formatted the line, linked or mentioned. Every markup character of a title
    is escaped with a backslash (Discord's and CommonMark's escape), so the line shows the
    title as written."""
    import re

    [message] = discord.digest_messages(Digest.from_delivery(_markup_delivery()))
    lines = message.splitlines()[1:]
    assert len(lines) == len(MARKUP_TITLES)
    for title, line in zip(MARKUP_TITLES, lines, strict=True):
        assert line.startswith("**")
        shown, _, rest = line[2:].rpartition("**: ")
        assert rest.startswith(tuple("0123456789"))
        # no markup character left unescaped inside the bold title
        bare = re.sub(r"\\[^0-9A-Za-z\s]", "", shown)
        assert not re.search(r"[*_~`|<>\[\]\\]", bare), (title, shown)
        assert not re.match(r"\s*([#>+-]|\d+[.)])", bare)
        # and it reads back as the title (mentions get a zero-width space after `@`)
        assert re.sub(r"\\([^0-9A-Za-z\s])", r"\1", shown).replace("@\u200b", "@") == title


def test_slack_titles_show_literally() -> None:
    """Slack's mrkdwn has no escape for `*`, `_` or `~`: a title `*revenue*` or `a_b_c` between
    the `*` of a bold title formatted the line. KPI lines (and failures) are `rich_text` blocks,
    whose text elements Slack shows as written (the Block Kit docs' advice for user-defined
    text); the notification text has `&`, `<`, `>` escaped and `mrkdwn` off."""
    digest = Digest.from_delivery(_markup_delivery())
    [message] = slack.digest_messages(digest)
    assert message["mrkdwn"] is False
    assert "<" not in message["text"] and "&lt;!channel&gt;" in message["text"]
    rich = [b for b in message["blocks"] if b["type"] == "rich_text"]
    assert rich and not [b for b in message["blocks"] if b["type"] == "section"]
    elements = [e for b in rich for s in b["elements"] for e in s["elements"]]
    assert all(e["type"] == "text" and e["text"] for e in elements)
    bold = [e["text"] for e in elements if e.get("style") == {"bold": True}]
    assert bold == MARKUP_TITLES
    text = "".join(e["text"] for e in elements)
    assert text.splitlines() == [f"{t}: {i + 1}" for i, t in enumerate(MARKUP_TITLES)]


def test_discord_values_are_not_escaped() -> None:
    """Only what users wrote is escaped: a value stays as the digest spells it ("-5", "12.5",
    not "\\-5" or "12\\.5", which Discord shows the same but which read badly in the text)."""
    values = {"src.neg": -5.0, "src.dec": 12.5}
    d = delivery(values=values, order=list(values), previous={}, errors=[], kpis={})
    [message] = discord.digest_messages(Digest.from_delivery(d))
    assert message.splitlines()[1:] == ["**src.neg**: -5", "**src.dec**: 12.5"]


def test_a_title_with_line_breaks_stays_on_its_kpis_line() -> None:
    """A `title:` written over two lines in YAML ("Revenue\\n# of customers") broke the KPI's
    line in every message: Discord's bold ended at the break and the rest of the title began
    a line of its own (a heading, a quote); Slack and the email showed a stray line. A title
    is shown on one line (its line breaks and tabs as spaces)."""
    values = {"src.a": 1.0, "src.b": 2.0}
    kpis = {"src.a": KpiSpec(title="Revenue\n# of customers"), "src.b": KpiSpec(title="x\t\r\ny")}
    d = delivery(values=values, order=list(values), previous={}, errors=[], kpis=kpis)
    digest = Digest.from_delivery(d)
    [message] = discord.digest_messages(digest)
    assert message.splitlines()[1:] == ["**Revenue # of customers**: 1", "**x y**: 2"]
    assert slack.digest_text(digest).splitlines()[1:] == ["Revenue # of customers: 1", "x y: 2"]
    assert email.digest_text(digest).splitlines()[2:4] == ["Revenue # of customers: 1", "x y: 2"]


def test_a_change_too_large_for_a_float_is_never_inf_or_nan() -> None:
    """1e300 against 1e-300 is a change past any float: the digest showed "⬆ inf%" and the
    webhook's JSON carried `Infinity`, which no JSON parser takes (the receiver refused every
    retry). Such a change has no percent: the marker alone, `change_percent` null."""
    import json

    from kpi_collector.destinations.webhook import payload

    values = {"src.big": 1e300, "src.neg": -1.7e308}
    previous = {"src.big": 1e-300, "src.neg": 1.7e308}
    d = delivery(values=values, order=list(values), previous=previous, errors=[], kpis={})
    lines = Digest.from_delivery(d).lines
    assert [(line.change_text, line.change_percent) for line in lines] == [("⬆", None), ("⬇", None)]
    body = json.dumps(payload(d), allow_nan=False)  # strict JSON
    assert "Infinity" not in body and "NaN" not in body


def test_a_one_day_comparison_is_one_day() -> None:
    # the digests' line under the KPIs read "Changes against 1 days earlier."
    assert Digest.from_delivery(delivery(compare_days=1)).comparison == (
        "Changes against 1 day earlier."
    )
    assert Digest.from_delivery(delivery(compare_days=14)).comparison == (
        "Changes against 14 days earlier."
    )


HEBREW = "משתמשים פעילים"  # "active users"
FSI, PDI = "\u2068", "\u2069"


def rtl_digest(**kpis: KpiSpec) -> Digest:
    values = {"app.users": 1200.0}
    specs = {"app.users": KpiSpec(title=HEBREW, unit="ש״ח"), **kpis}
    errors = [("מקור", "שגיאה 500 מהשרת")]
    d = delivery(values=values, order=list(values), previous={"app.users": 1000.0}, kpis=specs)
    return Digest.from_delivery(dataclasses.replace(d, errors=errors))


def test_right_to_left_titles_never_move_the_numbers_of_a_message() -> None:
    """A Hebrew (or Arabic) title followed by its value: the bidi algorithm took the value and
    the change for part of the title's right-to-left run, so `משתמשים פעילים: 1,200 ⬆ 20%`
    showed the numbers on the title's side, their order reversed. Titles, values with a
    right-to-left unit, failures and notes go between FIRST STRONG ISOLATE and POP
    DIRECTIONAL ISOLATE in every plain-text and Markdown message now; other text as it is."""
    digest = rtl_digest()
    title, value = f"{FSI}{HEBREW}{PDI}", f"{FSI}1,200 ש״ח{PDI}"
    line = f"{title}: {value} ⬆ 20.00%"
    assert kpi_line(digest.lines[0]) == line
    assert email.digest_text(digest).splitlines()[2] == line
    assert f"- **{title}**: {value} ⬆ 20.00%" in digest_markdown(digest).splitlines()
    assert f"**{title}**: {value} ⬆ 20.00%" in discord.digest_messages(digest)[0].splitlines()
    assert slack.digest_text(digest).splitlines()[1] == line
    [section] = slack.block_texts(slack.digest_blocks(digest)[1])
    assert section == line
    failure = f"{FSI}מקור{PDI}: {FSI}שגיאה 500 מהשרת{PDI}"
    for text in (email.digest_text(digest), digest_markdown(digest), slack.digest_text(digest)):
        assert failure in text
    notes = dataclasses.replace(digest, notes=[(date(2026, 11, 20), "גרסה 2.0 שוחררה")])
    assert f"- 2026-11-20: {FSI}גרסה 2.0 שוחררה{PDI}" in digest_markdown(notes).splitlines()
    english = Digest.from_delivery(delivery())
    for text in (email.digest_text(english), digest_markdown(english), slack.digest_text(english)):
        assert FSI not in text and PDI not in text


def test_bidi_controls_in_user_text_never_reach_a_message() -> None:
    """A title holding RIGHT-TO-LEFT OVERRIDE (U+202E) reversed the rest of its line, the value
    included (1,200 read 002,1), and one holding a POP DIRECTIONAL ISOLATE closed the isolate
    early; a title's bidi controls are dropped."""
    from kpi_collector.destinations.text import isolate

    assert isolate("Users \u202e") == "Users "
    assert isolate("א\u2069ב\u2066") == f"{FSI}אב{PDI}"
    assert isolate("ARR (\u0661\u0662)") == f"{FSI}ARR (\u0661\u0662){PDI}"  # Arabic digits
    digest = rtl_digest(**{"app.users": KpiSpec(title="Users\u202e reversed", unit="x")})
    for text in (email.digest_text(digest), slack.digest_text(digest)):
        assert "\u202e" not in text and "Users reversed: 1,200 x ⬆ 20.00%" in text
    for text in (digest_markdown(digest), discord.digest_messages(digest)[0]):
        assert "\u202e" not in text and "**Users reversed**: 1,200 x ⬆ 20.00%" in text


def test_a_unit_never_becomes_markup_in_discord() -> None:
    """Discord escaped the title but not the value's unit: a unit `[docs](https://x.example)`
    became a link, `**` bold. The unit is escaped inside the line; a value's `-` or `.` is
    not (`-5` and `12.5` read as written)."""
    values = {"app.a": 5.0, "app.b": -5.0}
    specs = {"app.a": KpiSpec(title="A", unit="[docs](https://x.example)"), "app.b": KpiSpec()}
    d = delivery(values=values, order=list(values), previous={}, kpis=specs, errors=[])
    [message] = discord.digest_messages(Digest.from_delivery(d))
    assert message.splitlines()[1:] == [
        "**A**: 5 \\[docs\\](https://x.example)",
        "**app.b**: -5",
    ]


def test_a_share_changes_in_percentage_points_in_messages() -> None:
    """A conversion rate of 10% last time and 12% now read "12% ⬆ 20.00%" in every message:
    a reader takes the 20% for the rate's own change (it rose 2 points). A KPI whose unit is
    `ratio` or `%` changes in percentage points, its relative change after it, as on the
    dashboard: "12% ⬆ 2 pp (20.00%)"."""
    values = {"app.conversion": 0.12, "app.uptime": 60.0, "app.stars": 1647.0}
    specs = {
        "app.conversion": KpiSpec(title="Conversion", unit="ratio"),
        "app.uptime": KpiSpec(title="Uptime", unit="%"),
        "app.stars": KpiSpec(title="Stars"),
    }
    previous = {"app.conversion": 0.10, "app.uptime": 59.5, "app.stars": 1620.0}
    d = delivery(values=values, order=list(values), previous=previous, kpis=specs, errors=[])
    digest = Digest.from_delivery(d)
    expected = [
        "Conversion: 12% ⬆ 2 pp (20.00%)",
        "Uptime: 60% ⬆ 0.5 pp (0.84%)",
        "Stars: 1,647 ⬆ 1.67%",
    ]
    assert [kpi_line(line) for line in digest.lines] == expected
    assert email.digest_text(digest).splitlines()[2:5] == expected
    assert "- **Conversion**: 12% ⬆ 2 pp (20.00%)" in digest_markdown(digest)
    same = Digest.from_delivery(dataclasses.replace(d, previous={"app.conversion": 0.12}))
    assert kpi_line(same.lines[0]) == "Conversion: 12% ➡ 0 pp (0.00%)"
    from_zero = Digest.from_delivery(dataclasses.replace(d, previous={"app.conversion": 0.0}))
    assert kpi_line(from_zero.lines[0]) == "Conversion: 12% ⬆ 12 pp"


def test_the_email_colours_a_change_by_the_kpis_direction() -> None:
    """The email coloured every rise green and every fall red, so churn going up (with
    `higher_is_better: false`) showed green, as good news. A change is green when it goes the
    KPI's good way, red otherwise, as on the dashboard."""
    values = {"app.churn": 12.0, "app.stars": 1647.0, "app.latency": 80.0}
    specs = {
        "app.churn": KpiSpec(title="Churn", higher_is_better=False),
        "app.stars": KpiSpec(title="Stars"),
        "app.latency": KpiSpec(title="Latency", higher_is_better=False),
    }
    previous = {"app.churn": 10.0, "app.stars": 1620.0, "app.latency": 95.0}
    d = delivery(values=values, order=list(values), previous=previous, kpis=specs, errors=[])
    html = email.digest_html(Digest.from_delivery(d))
    colour = {
        title: html.split(f"<b>{title}</b>", 1)[1].split("color:", 1)[1][:7]
        for title in ("Churn", "Stars", "Latency")
    }
    assert colour == {"Churn": "#cf222e", "Stars": "#1a7f37", "Latency": "#1a7f37"}


def test_the_report_lists_a_source_still_failing_after_a_run_of_others(tmp_path: Path) -> None:
    """`kpi report` listed the failures of the newest run only: podcast failed in the morning's
    full run, github ran alone on its own schedule an hour later, and the report said no
    source was failing. A source still failing in its newest run that included it is
    listed, after the newest run's own failures."""
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    hour = 3600.0
    for ts, errors in (
        (NOW.timestamp() - hour, [("podcast", None, "login refused", False)]),
        (NOW.timestamp(), []),
    ):
        run = store.begin_run(started_at=ts)
        store.finish_run(run, observations=[("github.stars", ts, 1648.0, "github")], errors=errors)
    digest = Digest.from_store(store, compare_days=None, now=NOW, sources=["github", "podcast"])
    assert digest.errors == [DigestError("podcast", "login refused")]
    fixed = store.begin_run(started_at=NOW.timestamp() + 60)
    store.finish_run(
        fixed, observations=[("podcast.downloads", NOW.timestamp() + 60, 5.0, "podcast")]
    )
    later = datetime.fromtimestamp(NOW.timestamp() + 120, UTC)
    digest = Digest.from_store(store, compare_days=None, now=later, sources=["github", "podcast"])
    assert digest.errors == []
    store.close()
