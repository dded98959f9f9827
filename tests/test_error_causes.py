"""Errors that point at the real cause, and config mistakes caught at load: `kpi` against local
services and config files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.demo.server import BackgroundServer
from kpi_collector.sources.github.fake import FakeGitHub, Repo
from tests.cli import run_kpi, stored_values

TOO_LARGE = (
    "The history or contributor list is too large to list contributors for this repository "
    "via the API."
)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add(Repo("torvalds", "linux", forks=5, watchers=8, contributors=3, too_large=True))
    fake.add(Repo("acme", "rocket", forks=31))
    with fake.serve():
        yield fake


def github_config(folder: Path, url: str, extra: str = "") -> None:
    (folder / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - {{name: linux, type: github, repo: torvalds/linux, api_url: "{url}"{extra}}}
""")


def run_errors(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return [m for (m,) in conn.execute("SELECT message FROM run_errors ORDER BY message")]


def test_github_too_large_to_list_contributors_says_so_and_how_to_leave_it_out(
    github: FakeGitHub, workdir: Path
) -> None:
    github_config(workdir, github.url)
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == [
        f"contributors: GitHub does not list the contributors of 'torvalds/linux' (HTTP 403: "
        f"{TOO_LARGE}): leave `contributors` out of `metrics:` of source 'linux', e.g. "
        "`metrics: [stars, forks, watchers, open_issues, open_prs, releases_downloads]`"
    ]
    output = result.stdout + result.stderr
    assert "credential" not in output and "token" not in output
    assert stored_values(workdir)["linux.forks"] == 5  # the other metrics are stored

    github_config(workdir, github.url, ", metrics: [stars, forks]")
    again = run_kpi(workdir, "run")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_403_without_credentials_blames_no_credentials(github: FakeGitHub, workdir: Path) -> None:
    github.inject(
        403,
        {"message": "Repository access blocked", "documentation_url": "https://docs.github.com"},
        path="/repos/torvalds/linux",
    )
    github_config(workdir, github.url, ", metrics: [stars]")
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == [
        f"GitHub refused {github.url}/repos/torvalds/linux (HTTP 403: Repository access "
        "blocked); source 'linux' sends no credentials"
    ]


def test_a_403_with_credentials_still_names_the_permission(
    github: FakeGitHub, workdir: Path
) -> None:
    github.tokens.add("ghp_someTokenValue123456")
    github.inject(403, {"message": "Resource not accessible by integration"}, path="/repos/")
    github_config(workdir, github.url, ', metrics: [stars], token: "${GH_TOKEN}"')
    result = run_kpi(workdir, "run", env={"GH_TOKEN": "ghp_someTokenValue123456"})
    assert run_errors(workdir) == [
        "GitHub refused access (HTTP 403: Resource not accessible by integration); the "
        "credentials lack a permission this needs (see the github connector docs)"
    ]
    assert "ghp_someTokenValue123456" not in result.stdout + result.stderr


def test_a_page_answering_403_without_auth_blames_no_credentials(workdir: Path) -> None:
    app = web.Application()

    async def blocked(request: web.Request) -> web.Response:
        return web.Response(status=403, text="Access denied by the firewall")

    app.router.add_get("/stats", blocked)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - {{name: page, type: html, url: "{url}/stats", metrics: {{n: "#n"}}}}
""")
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == [
        f"HTTP 403 from {url}/stats: forbidden — Access denied by the firewall"
    ]


def test_an_html_error_page_is_quoted_by_what_it_says_not_its_markup(workdir: Path) -> None:
    """A CDN's block page is kilobytes of styles and scripts before its words: the error
    quotes its title and visible text (in its charset), not the first 200 characters of
    markup."""
    app = web.Application()
    style = "body{margin:0;padding:0}" * 40
    page = (
        '<!DOCTYPE html><!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->'
        f"<html><head><title>Attention Required! | Cloudflare</title><style>{style}</style>"
        "<script>window._cf_chl_opt={cvId: '3'};</script></head><body>"
        "<h1>Sorry, you have been blocked</h1><p>You are unable to access stats.example \u2013 "
        "Ray ID: 8f2a</p></body></html>"
    )

    async def blocked(request: web.Request) -> web.Response:
        body = page.encode("cp1252")
        return web.Response(status=403, body=body, content_type="text/html", charset="windows-1252")

    app.router.add_get("/stats", blocked)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - {{name: page, type: html, url: "{url}/stats", metrics: {{n: "#n"}}}}
""")
        run_kpi(workdir, "run")
    assert run_errors(workdir) == [
        f"HTTP 403 from {url}/stats: forbidden — Attention Required! | Cloudflare Sorry, you "
        "have been blocked You are unable to access stats.example \u2013 Ray ID: 8f2a"
    ]


CRM = """\
sources:
  - name: crm
    type: http_json
    url: http://127.0.0.1:9/stats
    auth: {{bearer: "{token}"}}
    metrics:
      paying: value
"""


def test_an_empty_variable_is_a_config_error_naming_it(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(CRM.format(token="${CRM_TOKEN}"))
    result = run_kpi(workdir, "validate", env={"CRM_TOKEN": ""})
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "kpi.yaml:5: source 'crm': auth.bearer uses ${CRM_TOKEN}, which is set but empty in "
        "the environment; give it a value there, or unset it there and set it in .env beside "
        "the config, or give a default: ${CRM_TOKEN:-...}"
    )
    (workdir / ".env").write_text("CRM_TOKEN=\n")
    from_dotenv = run_kpi(workdir, "validate")
    assert from_dotenv.returncode == 2 and "which is set but empty in .env" in from_dotenv.stderr
    (workdir / ".env").write_text("CRM_TOKEN=t\n")  # the environment's empty value hides it
    hidden = run_kpi(workdir, "validate", env={"CRM_TOKEN": ""})
    assert hidden.returncode == 2
    assert "empty in the environment, and the environment wins over .env" in hidden.stderr
    # an explicit default is the config's own choice
    (workdir / "kpi.yaml").write_text(CRM.format(token="${CRM_TOKEN:-anonymous}"))
    assert run_kpi(workdir, "validate", env={"CRM_TOKEN": ""}).returncode == 0


def test_north_star_naming_no_kpi_is_an_error_with_did_you_mean(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text("north_star: crm.payng\n" + CRM.format(token="t0ken-1"))
    result = run_kpi(workdir, "validate")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "kpi.yaml:1: north_star 'crm.payng' is not a KPI id of this config; "
        "did you mean 'crm.paying'?"
    )
    (workdir / "kpi.yaml").write_text("north_star: sales.total\n" + CRM.format(token="t0ken-1"))
    result = run_kpi(workdir, "validate")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "kpi.yaml:1: north_star 'sales.total' is not a KPI id of this config; "
        "KPI ids here: crm.paying"
    )


SCHEDULED = """\
timezone: Europe/Berlin
store: "${STORE_URL}"
sources:
  - {name: gh, type: github, repo: a/b, token: "${GITHUB_TOKEN}", schedule: "30 */2 * * *"}
  - {name: crm, type: http_json, url: "${CRM_URL}", auth: {bearer: "${CRM_TOKEN}"},
     metrics: {paying: data.paying}}
destinations:
  - {type: slack, webhook_url: "${SLACK_WEBHOOK}", schedule: "0 9 * * 1"}
"""
SECRETS = {
    "GITHUB_TOKEN": "ghp_secret_value_123",
    "CRM_URL": "https://crm.example/api",
    "CRM_TOKEN": "crm-secret-value-456",
    "SLACK_WEBHOOK": "https://hooks.slack.example/services/T0/B0/secretpath",
    "STORE_URL": "postgresql+psycopg://kpi:store-password-789@db.example/kpi",
}


@pytest.mark.parametrize("kind", ["crontab", "systemd", "systemd-timer", "github-actions"])
def test_schedule_print_needs_no_secrets(workdir: Path, kind: str) -> None:
    (workdir / ".git").mkdir()
    (workdir / "kpi.yaml").write_text(SCHEDULED)
    without = run_kpi(workdir, "schedule", "--print", kind)
    assert without.returncode == 0, without.stderr
    with_secrets = run_kpi(workdir, "schedule", "--print", kind, env=SECRETS)
    assert with_secrets.returncode == 0, with_secrets.stderr
    assert without.stdout == with_secrets.stdout  # the same snippet: every job is in it
    if kind == "crontab":
        jobs = [
            line.split(" schedule --run ")[1].split()[0]
            for line in without.stdout.splitlines()
            if " --run " in line
        ]
        assert jobs == ["source:gh", "main", "destination:slack"]
    if kind == "github-actions":
        assert "STORE_URL: ${{ secrets.STORE_URL }}" in without.stdout
        assert "The store is a database server" in without.stdout
    assert all(value not in with_secrets.stdout for value in SECRETS.values())
