"""`pushgateway` against the real Prometheus Pushgateway (tests/fakes/pushgateway.py starts
the binary): basic auth, infinities as Prometheus spells them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    Pushgateway,
)
from tests.destinations import MONDAY, TOKEN, pipeline
from tests.fakes.pushgateway import gauge, pushgateway

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


def test_pushgateway_basic_auth(tmp_path: Path) -> None:
    with pushgateway(users={"kpi": TOKEN}) as url:
        right = Pushgateway(url=url, username="kpi", password=TOKEN, retries=0)
        result = pipeline(tmp_path, right, {"stars": 1647.0}).process(now=MONDAY)
        assert result.delivery_errors == {}
        assert gauge(url, "github.stars", auth=("kpi", TOKEN)) == 1647
        wrong = Pushgateway(url=url, username="kpi", password="wrong-" + TOKEN, retries=0)
        error = pipeline(tmp_path / "2", wrong, {"stars": 1647.0}).process(now=MONDAY)
        message = error.delivery_errors["pushgateway"]
        assert "401" in message and "check username and password" in message
        assert TOKEN not in message


def test_pushgateway_writes_infinities_as_prometheus_spells_them(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from kpi_collector.collect.http import HttpClient
    from kpi_collector.destinations.base import Delivery
    from kpi_collector.destinations.pushgateway import exposition

    values = {"up.inf": float("inf"), "down.inf": float("-inf"), "no.nan": float("nan")}
    delivery = Delivery(
        period="2026-11-23",
        period_start=MONDAY.date(),
        run_id=1,
        values=values,
        timestamps=dict.fromkeys(values, MONDAY.timestamp()),
        kpis={},
        order=list(values),
        tz=ZoneInfo("UTC"),
        now=MONDAY,
        destination="pushgateway",
    )
    text = exposition(delivery)
    assert 'kpi_value{kpi="up.inf",title="up.inf"} +Inf' in text
    assert 'kpi_value{kpi="down.inf",title="down.inf"} -Inf' in text
    assert 'kpi_value{kpi="no.nan",title="no.nan"} NaN' in text

    async def push(url: str) -> None:
        async with HttpClient() as client:
            delivery.http_client = client
            await Pushgateway(url=url).deliver(delivery)

    with pushgateway() as url:
        asyncio.run(push(url))
        assert gauge(url, "up.inf") == float("inf") and gauge(url, "down.inf") == float("-inf")


def test_pushgateway_grouping_values_with_slash_or_empty_use_the_base64_form(
    tmp_path: Path,
) -> None:
    """issue 18 §3: `eu/prod`, an empty value and a job name with `/` went out percent-encoded
    or as `//`, and the real Pushgateway answered 400 on every run."""
    from tests.fakes.pushgateway import groups

    destination = Pushgateway(
        url="http://pg", job="kpi/eu", grouping={"env": "eu/prod", "instance": ""}
    )
    assert destination.push_url() == (
        "http://pg/metrics/job@base64/a3BpL2V1/env@base64/ZXUvcHJvZA/instance@base64/="
    )
    with pushgateway() as url:
        destination = Pushgateway(
            url=url,
            job="kpi/eu",
            grouping={"env": "eu/prod", "instance": "", "dc": "fra 1"},
            retries=0,
        )
        result = pipeline(tmp_path, destination, {"stars": 1647.0}).process(now=MONDAY)
        assert result.delivery_errors == {}
        [group] = groups(url)
        labels = group["labels"]
        assert (labels["job"], labels["env"], labels["dc"]) == ("kpi/eu", "eu/prod", "fra 1")
        assert labels.get("instance", "") == ""
        assert gauge(url, "github.stars", job="kpi/eu") == 1647


def test_pushgateway_has_no_layout_and_refuses_one_at_load(tmp_path: Path) -> None:
    """A push replaces the group's metrics: there are no rows to lay out, so `layout:` (which
    table destinations take) is refused at load in one line, never silently ignored."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: app, type: python, function: 'os:getpid'}\n"
        "destinations:\n"
        "  - {type: pushgateway, url: 'http://127.0.0.1:9091', layout: long}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [line] = str(caught.value).splitlines()
    assert line.startswith(f"{config}:4: destination 'pushgateway': unknown key 'layout'")
    assert "known keys:" in line and "layout" not in line.split("known keys:")[1]
    assert Pushgateway.upserts  # still re-pushed at every run of the period, like a table


def test_a_sign_in_page_in_front_of_the_pushgateway_is_not_a_push(tmp_path: Path) -> None:
    """A proxy or single sign-on in front of the Pushgateway answers the PUT with its sign-in
    page (200): that was taken as pushed and the period lost; it is an error and the push
    stays pending (the Pushgateway itself answers 200 with an empty body)."""
    from kpi_collector.destinations.webhook.fake import FakeReceiver

    page = "<!DOCTYPE html><html><body><form>Sign in</form></body></html>"
    with FakeReceiver.serve(TOKEN) as proxy:
        proxy.fail_next(200, page, {"Content-Type": "text/html"})
        p = pipeline(tmp_path, Pushgateway(url=proxy.url, retries=0), {"stars": 1647.0})
        message = p.process(now=MONDAY).delivery_errors["pushgateway"]
    assert "HTTP 200 with an HTML page" in message
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"


@pytest.mark.parametrize(
    ("grouping", "said"),
    [
        ("{env-name: prod}", "'env-name' is not a Prometheus label name"),
        ("{1env: prod}", "'1env' is not a Prometheus label name"),
        ("{__env: prod}", "'__env' is not a Prometheus label name"),
        ("{job: other}", "`job:`"),
    ],
)
def test_a_grouping_label_the_pushgateway_refuses_is_a_config_error(
    tmp_path: Path, grouping: str, said: str
) -> None:
    """The Pushgateway answers a push under `env-name/prod` with 400 "improper label name":
    every period's push was refused for good (marked failed) at run time. Such a label name
    is a config error at load; `job` in `grouping` (which silently replaced `job:`) too."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: app, type: python, function: 'os:getpid'}\n"
        "destinations:\n"
        f"  - {{type: pushgateway, url: 'http://127.0.0.1:9091', grouping: {grouping}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert said in str(caught.value) and "grouping" in str(caught.value)


@pytest.mark.parametrize("every", ["day", "week", "month"])
def test_a_kpi_a_later_run_of_the_period_missed_stays_in_its_group(
    tmp_path: Path, every: str
) -> None:
    """A push replaces the group's metrics: the period's second run, whose source of forks
    failed, pushed stars alone and forks' value of the period left the Pushgateway (a
    table's row of the period keeps it). The group holds each KPI's newest value of the
    period; a new period starts from its own values."""
    from datetime import timedelta

    with pushgateway() as url:
        destination = Pushgateway(url=url, every=every, retries=0)  # type: ignore[arg-type]
        state = {"stars": 1.0, "forks": 2.0}
        p = pipeline(tmp_path, destination, state)
        assert p.process(now=MONDAY).delivery_errors == {}
        state.pop("forks")
        state["stars"] = 3.0
        assert p.process(now=MONDAY + timedelta(hours=2)).delivery_errors == {}
        assert gauge(url, "github.stars") == 3.0
        assert gauge(url, "github.forks") == 2.0
        state["stars"] = 4.0
        later = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=31)}
        assert p.process(now=MONDAY + later[every]).delivery_errors == {}
        assert gauge(url, "github.stars") == 4.0
        assert gauge(url, "github.forks") is None
