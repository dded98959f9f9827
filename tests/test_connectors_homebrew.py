"""`type: homebrew` against a local copy of Homebrew's JSON API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.homebrew import Homebrew
from kpi_collector.sources.homebrew.fake import FakeHomebrew
from tests.cli import run_kpi, stored_values
from tests.fakes.collect import collect, outcome

WGET = {
    "install": {
        "30d": {"wget": 41_000, "wget --HEAD": 12},
        "90d": {"wget": 130_500, "wget --HEAD": 40},
        "365d": {"wget": 540_100, "wget --HEAD": 150},
    },
    "install_on_request": {
        "30d": {"wget": 38_000, "wget --HEAD": 12},
        "90d": {"wget": 121_000, "wget --HEAD": 40},
        "365d": {"wget": 500_000, "wget --HEAD": 150},
    },
    "build_error": {"30d": {"wget": 3}},
}
FIREFOX = {
    "install": {"30d": {"firefox": 9_800}, "90d": {"firefox": 30_000}, "365d": {"firefox": 120_000}}
}


@pytest.fixture
def brew():
    fake = FakeHomebrew(formulae={"wget": WGET}, casks={"firefox": FIREFOX})
    with fake.serve():
        yield fake


def test_a_formulas_installs_sum_every_variant(brew: FakeHomebrew) -> None:
    assert collect(Homebrew(formula="wget", api_url=brew.url)) == {
        "installs_30_days": 41_012.0,
        "installs_90_days": 130_540.0,
        "installs_365_days": 540_250.0,
        "installs_on_request_30_days": 38_012.0,
        "installs_on_request_90_days": 121_040.0,
        "installs_on_request_365_days": 500_150.0,
    }
    assert brew.requests[0].path == "/api/formula/wget.json" and brew.calls() == 1


def test_a_cask_and_a_subset(brew: FakeHomebrew) -> None:
    assert collect(Homebrew(cask="firefox", api_url=brew.url)) == {
        "installs_30_days": 9_800.0,
        "installs_90_days": 30_000.0,
        "installs_365_days": 120_000.0,
    }
    source = Homebrew(formula="wget", api_url=brew.url, metrics=["installs_on_request_30_days"])
    assert collect(source) == {"installs_on_request_30_days": 38_012.0}


def test_config_mistakes_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'downloads' for type 'homebrew'"):
        Homebrew(formula="wget", metrics=["downloads"])
    with pytest.raises(ValidationError, match="exactly one of `formula:` and `cask:`"):
        Homebrew()
    with pytest.raises(ValidationError, match="a cask has no 'installs_on_request_30_days'"):
        Homebrew(cask="firefox", metrics=["installs_on_request_30_days"])
    with pytest.raises(ValidationError, match="not a formula or cask name"):
        Homebrew(formula="../etc")


def test_unknown_formula_names_the_key(brew: FakeHomebrew) -> None:
    ((_, message, transient),) = outcome(Homebrew(formula="wgett", api_url=brew.url)).errors
    assert "Homebrew has no formula 'wgett'" in message and "`formula:`" in message
    assert not transient and "<" not in message


def test_a_5xx_is_retried(brew: FakeHomebrew) -> None:
    brew.inject(503, "<html>Service Unavailable</html>")
    source = Homebrew(formula="wget", api_url=brew.url, metrics=["installs_30_days"])
    assert collect(source) == {"installs_30_days": 41_012.0}
    assert brew.calls() == 2


def test_kpi_run_end_to_end(brew: FakeHomebrew, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: brew, type: homebrew, cask: firefox, api_url: "{brew.url}", '
        "metrics: [installs_30_days]}\n"
    )
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert stored_values(tmp_path) == {"brew.installs_30_days": 9_800.0}
