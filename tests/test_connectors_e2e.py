"""The ready connectors end to end: `kpi run` and `kpi backfill` (subprocesses) against local
fakes of every service, with a real SQLite store; secrets never reach output or the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kpi_collector.sources.codecov.fake import FakeCodecov
from kpi_collector.sources.discord.fake import FakeDiscord
from kpi_collector.sources.dockerhub.fake import FakeDockerHub
from kpi_collector.sources.github.fake import FakeGitHub, Repo
from kpi_collector.sources.mixpanel.fake import FakeMixpanel
from kpi_collector.sources.npm.fake import FakeNpm
from kpi_collector.sources.posthog.fake import FakePostHog
from kpi_collector.sources.pypi.fake import FakePyPIStats
from kpi_collector.sources.slack.fake import FakeSlack, Member
from kpi_collector.sources.stripe.fake import FakeStripe, subscription
from tests.cli import run_kpi, store_dump

SECRETS = {
    "GITHUB_TOKEN": "ghp_e2eGithubTokenValue000000000000001",
    "CODECOV_TOKEN": "e2e-codecov-token-value-000000000002",
    "SLACK_TOKEN": "xoxb-e2e-slack-token-value-0000000003",
    "STRIPE_API_KEY": "sk_test_e2eStripeKeyValue000000000004",
    "POSTHOG_API_KEY": "phx_e2ePosthogKeyValue00000000000005",
    "MIXPANEL_SECRET": "e2e-mixpanel-secret-value-00000000006",
}
TODAY = datetime.now(UTC).date()
FIRST_STAR = datetime.combine(TODAY - timedelta(days=40), datetime.min.time(), UTC) + timedelta(
    hours=9
)


def daily(days: int, base: int) -> dict[date, int]:
    return {TODAY - timedelta(days=n): base + n % 7 * 10 for n in range(1, days + 1)}


class Services:
    """Every fake, filled with a little data, each on its own port."""

    def __init__(self) -> None:
        self.github = FakeGitHub(
            tokens={SECRETS["GITHUB_TOKEN"]}, push_tokens={SECRETS["GITHUB_TOKEN"]}
        )
        self.github.add(
            Repo(
                "acme",
                "rocket",
                starred_at=[FIRST_STAR + timedelta(hours=12 * i) for i in range(60)],
                forks=7,
                watchers=3,
                open_issues=4,
                open_prs=2,
                contributors=5,
                release_assets=[[3, 4]],
                views=(80, 20),
                clones=(9, 4),
            )
        )
        self.pypi = FakePyPIStats(today=TODAY)
        self.pypi.packages["rocket"] = {d: (n + 5, n) for d, n in daily(60, 100).items()}
        self.npm = FakeNpm(today=TODAY)
        self.npm.packages["rocket"] = daily(60, 300)
        self.dockerhub = FakeDockerHub(repos={"acme/rocket": (5000, 12)})
        self.codecov = FakeCodecov(tokens={SECRETS["CODECOV_TOKEN"]})
        self.codecov.reports[("github", "acme/rocket", None)] = {
            "files": 3,
            "lines": 200,
            "hits": 150,
        }
        self.discord = FakeDiscord(invites={"rocket": (321, 45)})
        self.slack = FakeSlack(
            members=[Member(f"U{i:05d}", f"p{i}") for i in range(12)],
            tokens={SECRETS["SLACK_TOKEN"]: {"users:read"}},
        )
        start = datetime.combine(TODAY - timedelta(days=20), datetime.min.time(), UTC).timestamp()
        self.stripe = FakeStripe(
            keys={SECRETS["STRIPE_API_KEY"]},
            subscriptions=[
                subscription(customer="cus_1", start=start, amount=2500),
                subscription(
                    customer="cus_2", start=start + 5 * 86400, amount=12000, interval="year"
                ),
            ],
        )
        events = [
            (
                datetime.combine(TODAY - timedelta(days=n), datetime.min.time(), UTC)
                + timedelta(hours=12),
                f"user{u}",
                "pageview",
            )
            for n in range(1, 15)
            for u in range(n % 4 + 1)
        ]
        self.posthog = FakePostHog(
            keys={SECRETS["POSTHOG_API_KEY"]: {"query:read"}}, events=events, today=TODAY
        )
        self.mixpanel = FakeMixpanel(
            accounts={"bot.mp-service-account": SECRETS["MIXPANEL_SECRET"]},
            projects={99: {"bot.mp-service-account"}},
            events=events,
            today=TODAY,
        )

    @property
    def all(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if hasattr(v, "serve")}


CONFIG = """\
timezone: UTC
sources:
  - {{name: github, type: github, repo: acme/rocket, token: "${{GITHUB_TOKEN}}", api_url: "{github}",
     metrics: [stars, forks, watchers, open_issues, open_prs, contributors, releases_downloads, unique_views]}}
  - {{name: pypi, type: pypi, package: rocket, api_url: "{pypi}"}}
  - {{name: npm, type: npm, package: rocket, api_url: "{npm}"}}
  - {{name: docker, type: dockerhub, repo: acme/rocket, api_url: "{dockerhub}"}}
  - {{name: codecov, type: codecov, repo: acme/rocket, token: "${{CODECOV_TOKEN}}", api_url: "{codecov}"}}
  - {{name: discord, type: discord, invite: "https://discord.gg/rocket", api_url: "{discord}"}}
  - {{name: slack, type: slack, token: "${{SLACK_TOKEN}}", api_url: "{slack}"}}
  - {{name: stripe, type: stripe, api_key: "${{STRIPE_API_KEY}}", api_url: "{stripe}"}}
  - {{name: posthog, type: posthog, project_id: 4242, api_key: "${{POSTHOG_API_KEY}}", api_url: "{posthog}"}}
  - name: mixpanel
    type: mixpanel
    project_id: 99
    username: bot.mp-service-account
    secret: "${{MIXPANEL_SECRET}}"
    api_url: "{mixpanel}"
"""


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Services, Path]]:
    found = Services()
    with ExitStack() as stack:
        urls = {name: stack.enter_context(fake.serve()) for name, fake in found.all.items()}  # type: ignore[attr-defined]
        (tmp_path / "kpi.yaml").write_text(CONFIG.format(**urls))
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
        yield found, tmp_path


def stored(folder: Path) -> dict[str, list[tuple[float, float, int]]]:
    with sqlite3.connect(folder / "kpi.db") as db:
        rows = db.execute(
            "SELECT kpi, ts, value, backfilled FROM observations ORDER BY kpi, ts"
        ).fetchall()
    out: dict[str, list[tuple[float, float, int]]] = {}
    for kpi_id, ts, value, backfilled in rows:
        out.setdefault(kpi_id, []).append((ts, value, backfilled))
    return out


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for name, value in SECRETS.items():
            assert value not in text, f"{name} leaked"


def test_kpi_run_collects_every_connector_into_sqlite(services: tuple[Services, Path]) -> None:
    _, folder = services
    result = run_kpi(folder, "run", "--format", "json", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    values = stored(folder)
    latest = {k: v[-1][1] for k, v in values.items()}
    assert (
        latest["github.stars"] == 60
        and latest["github.open_prs"] == 2
        and latest["github.open_issues"] == 4
    )
    assert latest["github.contributors"] == 5 and latest["github.releases_downloads"] == 7
    assert latest["pypi.downloads_last_day"] == 110 and latest["npm.downloads_last_day"] == 310
    assert latest["docker.pulls"] == 5000 and latest["codecov.coverage"] == 75.0
    assert latest["discord.members"] == 321 and latest["slack.members"] == 12
    assert (
        latest["stripe.mrr"] == 35.0
        and latest["stripe.arr"] == 420.0
        and latest["stripe.customers"] == 2
    )
    assert latest["posthog.dau"] == latest["mixpanel.dau"] == 2  # yesterday: n=1 -> 2 users
    assert latest["posthog.mau"] == latest["mixpanel.mau"] == 4
    assert latest["github.unique_views"] == 20
    assert len(latest) == 8 + 5 + 3 + 2 + 1 + 2 + 1 + 5 + 3 + 3  # github: the 8 listed
    assert_no_secret(result.stdout, result.stderr, store_dump(folder))
    table = run_kpi(folder, "run", env={"COLUMNS": "200"})
    assert table.returncode == 0 and "github.stars" in table.stdout and "stripe.mrr" in table.stdout


def test_kpi_backfill_twice_adds_nothing_and_keeps_live_values(
    services: tuple[Services, Path],
) -> None:
    from kpi_collector.pipeline import Pipeline

    _, folder = services
    # a value collected live five days ago, which backfill must leave alone
    five_days_ago = datetime.combine(
        TODAY - timedelta(days=5), datetime.min.time(), UTC
    ) + timedelta(hours=7)
    live = Pipeline.from_config(folder / "kpi.yaml").process(
        deliver=False, now=five_days_ago, only=["github"]
    )
    assert live.values["github.stars"] == 60 and not live.errors

    since = (TODAY - timedelta(days=30)).isoformat()
    first = run_kpi(folder, "backfill", "--since", since, env={"COLUMNS": "200"})
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("github", "pypi", "npm", "stripe", "posthog", "mixpanel"):
        assert f"{name}: " in first.stdout and f"{name}: 0 values added" not in first.stdout
    for name in ("docker", "codecov", "discord", "slack"):
        assert f"{name}: cannot give past values (skipped)" in first.stdout
    # each source says which days it covered and, when fewer than asked, why
    yesterday = TODAY - timedelta(days=1)
    lines = dict(line.split(": ", 1) for line in first.stdout.splitlines())
    assert lines["github"].endswith(f"; covered {since} to {yesterday}")
    assert lines["stripe"].endswith(
        f"; covered {TODAY - timedelta(days=20)} to {yesterday} of {since} to {yesterday} "
        f"(the first subscription began paying on {TODAY - timedelta(days=20)})"
    ), first.stdout
    first_activity = TODAY - timedelta(days=14)
    assert lines["mixpanel"].endswith(f"(the service has nothing before {first_activity})")
    after_first = stored(folder)

    stars = {
        datetime.fromtimestamp(ts, UTC).date(): (value, backfilled)
        for ts, value, backfilled in after_first["github.stars"]
    }
    assert stars[five_days_ago.date()] == (60, 0)  # the live value, not the day's cumulative count
    assert stars[TODAY - timedelta(days=30)][1] == 1 and stars[TODAY - timedelta(days=30)][0] < 60
    assert max(stars) == TODAY - timedelta(days=1)
    assert len(after_first["pypi.downloads_last_day"]) == 30
    assert after_first["stripe.mrr"][-1][1] == 35.0 and len(after_first["stripe.mrr"]) == 20
    assert {b for rows in after_first.values() for _, _, b in rows} == {0, 1}

    second = run_kpi(folder, "backfill", "--since", since, env={"COLUMNS": "200"})
    assert second.returncode == 0
    for name in ("github", "pypi", "npm", "stripe", "posthog", "mixpanel"):
        assert f"{name}: 0 values added" in second.stdout
    assert stored(folder) == after_first
    assert_no_secret(first.stdout, first.stderr, second.stdout, second.stderr, store_dump(folder))


def test_refused_tokens_never_reach_output_or_the_store(services: tuple[Services, Path]) -> None:
    fakes, folder = services
    # every service now refuses the configured credentials
    fakes.github.tokens.clear()
    fakes.codecov.tokens.clear()
    fakes.slack.tokens.clear()
    fakes.stripe.keys.clear()
    fakes.posthog.keys.clear()
    fakes.mixpanel.accounts["bot.mp-service-account"] = "another-secret"
    for fmt in ("table", "json"):
        result = run_kpi(folder, "run", "--format", fmt, env={"COLUMNS": "200"})
        assert result.returncode == 1
        text = result.stdout + result.stderr
        for name in ("github", "codecov", "slack", "stripe", "posthog", "mixpanel"):
            assert name in text
        assert "${STRIPE_API_KEY}" in text and "${GITHUB_TOKEN}" in text
        assert_no_secret(text)
    backfilled = run_kpi(
        folder,
        "backfill",
        "--since",
        (TODAY - timedelta(days=3)).isoformat(),
        env={"COLUMNS": "200"},
    )
    assert backfilled.returncode == 1 and "failed stripe" in backfilled.stderr
    assert_no_secret(backfilled.stdout, backfilled.stderr, store_dump(folder))
    with sqlite3.connect(folder / "kpi.db") as db:
        messages = [m for (m,) in db.execute("SELECT message FROM run_errors")]
    assert any("Stripe refused the credentials" in m for m in messages)


def test_a_refused_credential_names_the_variable_the_config_reads(
    services: tuple[Services, Path],
) -> None:
    fakes, folder = services
    config = folder / "kpi.yaml"
    config.write_text(config.read_text().replace("${GITHUB_TOKEN}", "${ACME_GH_PAT}"))
    (folder / ".env").write_text(
        (folder / ".env").read_text() + f"ACME_GH_PAT={SECRETS['GITHUB_TOKEN']}\n"
    )
    fakes.github.tokens.clear()
    result = run_kpi(folder, "run", "--only", "github", env={"COLUMNS": "200"})
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "GitHub refused the credentials" in text
    assert "check ${ACME_GH_PAT}" in text and "GITHUB_TOKEN" not in text
    assert_no_secret(text)


def test_a_credential_given_in_python_names_the_usual_variable() -> None:
    from kpi_collector.sources.github import GitHub

    source = GitHub(name="gh", repo="acme/rocket", token="ghp_written_in_code_1234")
    hint = source.credential_hint()
    assert "`token` of source 'gh' is wrong" in hint and "usually read from ${GITHUB_TOKEN}" in hint
