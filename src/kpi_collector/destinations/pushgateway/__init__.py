"""`type: pushgateway`: the values as Prometheus gauges, pushed to a Pushgateway.

    - {type: pushgateway, url: http://pushgateway:9091, job: kpi_collector}

One gauge family `kpi_value{kpi="github.stars", title="GitHub stars"}` plus
`kpi_period_start_timestamp_seconds` and `kpi_delivery_timestamp_seconds`. The push is a PUT,
which replaces the group's metrics: re-running is idempotent.
"""

from __future__ import annotations

import base64
import re
from typing import ClassVar
from urllib.parse import quote

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, check_http_url
from kpi_collector.destinations._http import check_success, error_detail, send, status_error
from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.destinations.exposition import CONTENT_TYPE, label, number
from kpi_collector.secrets import Secret
from kpi_collector.store.periods import local_midnight

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def period_values(delivery: Delivery) -> dict[str, float]:
    """What the period's group holds after this push: the delivery's values, and for a day,
    week or month each KPI's newest value stored in the period up to them (as a table's row
    of the period keeps a KPI that a later run of it did not collect). A push replaces the
    group whole: with the run's values alone, a KPI whose source failed in the period's
    second run was taken out of the Pushgateway, its value of the period lost."""
    values = {kpi: delivery.values[kpi] for kpi in delivery.ordered}
    if delivery.every == "run" or delivery.store is None:
        return values
    start = local_midnight(delivery.period_start, delivery.tz)
    until = max(delivery.timestamps.values(), default=delivery.now.timestamp())
    found = delivery.store.latest(None, before=until)
    earlier = {k: r.value for k, r in sorted(found.items()) if r.ts >= start and k not in values}
    return {**values, **earlier}


def exposition(delivery: Delivery) -> str:
    """The values of the period (`period_values`) in Prometheus' text exposition format."""
    lines = [
        "# HELP kpi_value The value of a KPI collected by kpi-collector.",
        "# TYPE kpi_value gauge",
    ]
    for kpi, value in period_values(delivery).items():
        labels = f'kpi="{label(kpi)}",title="{label(delivery.title(kpi))}"'
        lines.append(f"kpi_value{{{labels}}} {number(value)}")
    start = local_midnight(delivery.period_start, delivery.tz)
    lines += [
        "# HELP kpi_period_start_timestamp_seconds Start of the period the values belong to.",
        "# TYPE kpi_period_start_timestamp_seconds gauge",
        f"kpi_period_start_timestamp_seconds {number(start)}",
        "# HELP kpi_delivery_timestamp_seconds When the values were collected.",
        "# TYPE kpi_delivery_timestamp_seconds gauge",
        f"kpi_delivery_timestamp_seconds {number(delivery.now.timestamp())}",
    ]
    return "\n".join(lines) + "\n"


def _segment(label: str, value: str) -> str:
    """One `label/value` pair of the push URL's path. Plain (percent-encoded) where the value
    is a non-empty string without `/`; else the Pushgateway's base64 form: `label@base64/`
    and the value in base64url (RFC 4648 section 5) without padding, the empty value as `=`
    (Pushgateway README: "If you need to use a slash or an empty string as a value, use
    base64url encoding"). Example: ("env", "eu/prod") -> "env@base64/ZXUvcHJvZA"."""
    if value and "/" not in value:
        return f"{quote(label, safe='')}/{quote(value, safe='')}"
    encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "="
    return f"{quote(label, safe='')}@base64/{encoded}"


class Pushgateway(Destination):
    """Replaces its group's metrics at every push, like a table's row for the period (it
    `upserts`), but has no rows to lay out: no `layout` key."""

    type: ClassVar[str] = "pushgateway"
    upserts: ClassVar[bool] = True

    url: str = "http://127.0.0.1:9091"
    job: str = Field(default="kpi_collector", min_length=1)
    grouping: dict[str, str] = Field(
        default_factory=dict
    )  # extra grouping labels, e.g. {env: prod}
    username: str | None = None
    password: Secret | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("grouping")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        """Names the Pushgateway takes: it answers any other with 400 "improper label name",
        which refused every period's push; `job` there would replace `job:`."""
        for name in value:
            if name == "job":
                raise ValueError("'job' is set with `job:`, not in grouping")
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"{name!r} is not a Prometheus label name (letters, digits and _, not "
                    "starting with a digit or __)"
                )
        return value

    def push_url(self) -> str:
        """`<url>/metrics/job/<job>/<label>/<value>...`, each value in the form the Pushgateway
        reads back unchanged: a value with `/` or an empty one (which the Pushgateway's router
        cannot take plain; it answers 400) goes as `<label>@base64/<base64url>`, empty as `=`,
        as its official clients do (Pushgateway README, "URL"; client_golang push.go)."""
        path = "/metrics/" + _segment("job", self.job)
        for key, value in self.grouping.items():
            path += "/" + _segment(key, value)
        return self.url.rstrip("/") + path

    def _auth(self) -> Auth | None:
        if self.password is None:
            return None
        return Auth(basic=(self.username or "", self.password))

    async def deliver(self, delivery: Delivery) -> None:
        response = await send(
            delivery,
            "PUT",
            self.push_url(),
            service="the Pushgateway",
            timeout=self.timeout,
            data=exposition(delivery).encode(),
            headers={"Content-Type": CONTENT_TYPE},
            auth=self._auth(),
        )
        if 200 <= response.status < 300:  # the Pushgateway's is empty; a proxy's page is none
            check_success(
                response,
                service="the Pushgateway",
                fix="check `url` (and that no proxy or sign-in page stands in front of it)",
            )
            return
        hint = "check username and password" if response.status == 401 else None
        raise status_error(
            response, service="the Pushgateway", detail=error_detail(response), hint=hint
        )
