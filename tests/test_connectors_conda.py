"""`type: conda` against a local copy of the anaconda.org package API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.conda import Conda
from kpi_collector.sources.conda.fake import CondaFile, FakeAnaconda
from tests.cli import run_kpi, stored_values
from tests.fakes.collect import collect, outcome


@pytest.fixture
def anaconda():
    fake = FakeAnaconda(
        channels={
            "conda-forge": {
                "acme-tool": [
                    CondaFile("1.0.0", "noarch", "pyhd8ed1ab_0", 12_000),
                    CondaFile("1.1.0", "linux-64", "py312h1234_0", 30_500),
                    CondaFile("1.1.0", "osx-arm64", "py312h5678_0", 8_250),
                ]
            },
            "anaconda": {"acme-tool": [CondaFile("1.0.0", "linux-64", "py311_0", 4_000)]},
        }
    )
    with fake.serve():
        yield fake


def test_downloads_sum_every_file(anaconda: FakeAnaconda) -> None:
    assert collect(Conda(package="acme-tool", api_url=anaconda.url)) == {
        "downloads": 50_750.0,
        "versions": 2.0,
    }
    assert anaconda.requests[0].path == "/package/conda-forge/acme-tool"


def test_several_channels_and_a_subset(anaconda: FakeAnaconda) -> None:
    source = Conda(
        package="acme-tool",
        channels=["conda-forge", "anaconda"],
        api_url=anaconda.url,
        metrics=["downloads"],
    )
    assert collect(source) == {"downloads": 54_750.0}
    assert anaconda.calls() == 2


def test_config_mistakes_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'stars' for type 'conda'"):
        Conda(package="numpy", metrics=["stars"])
    with pytest.raises(ValidationError, match="at least one channel"):
        Conda(package="numpy", channels=[])
    with pytest.raises(ValidationError, match="not a conda package name"):
        Conda(package="a/b")


def test_a_channel_without_the_package_names_both_keys(anaconda: FakeAnaconda) -> None:
    source = Conda(package="acme-tool", channels=["conda-forge", "bioconda"], api_url=anaconda.url)
    ((_, message, transient),) = outcome(source).errors
    assert "no package 'acme-tool' in channel 'bioconda'" in message
    assert "`package:` and `channels:`" in message and not transient


def test_a_5xx_is_retried(anaconda: FakeAnaconda) -> None:
    anaconda.inject(502, "<html>Bad Gateway</html>")
    assert collect(Conda(package="acme-tool", api_url=anaconda.url, metrics=["versions"])) == {
        "versions": 2.0
    }
    assert anaconda.calls() == 2


def test_kpi_run_end_to_end(anaconda: FakeAnaconda, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: conda, type: conda, package: acme-tool, api_url: "{anaconda.url}"}}\n'
    )
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert stored_values(tmp_path) == {"conda.downloads": 50_750.0, "conda.versions": 2.0}
