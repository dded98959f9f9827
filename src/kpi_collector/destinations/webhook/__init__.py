"""`type: webhook`: the delivery as a JSON POST, optionally signed with HMAC-SHA256; alerts
as `{"type": "alert", "text": ...}`, signed the same way.

    - {type: webhook, url: "${KPI_WEBHOOK_URL}", secret: "${KPI_WEBHOOK_SECRET}", every: day}

The receiver verifies `X-KPI-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` and can
drop repeats by the `Idempotency-Key` header (the same for every retry of one period).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector._version import __version__
from kpi_collector.collect.http import check_http_url, is_http_url
from kpi_collector.destinations._http import Sender, check_success, error_detail, send, status_error
from kpi_collector.destinations.base import Delivery, MessageDestination, message_id
from kpi_collector.destinations.digest import Digest
from kpi_collector.destinations.text import send_now
from kpi_collector.secrets import Secret

SIGNATURE_HEADER = "X-KPI-Signature-256"


def payload(delivery: Delivery) -> dict[str, Any]:
    """The JSON document a webhook receives: the digest's lines and errors as data (stable;
    documented in docs/destinations.md)."""
    digest = Digest.from_delivery(delivery)
    return {
        "delivery_id": delivery.delivery_id,
        "destination": delivery.destination,
        "period": delivery.period,
        "period_start": delivery.period_start.isoformat(),
        "run_id": delivery.run_id,
        "collected_at": delivery.now.isoformat(),
        "compare_days": digest.compare_days,
        "values": [
            {
                "kpi": line.kpi,
                "title": line.title,
                "value": line.value,
                "unit": line.unit,
                "formatted": line.formatted,
                "previous": line.previous,
                "change_percent": line.change_percent,
                "group": line.group,
            }
            for line in digest.lines
        ],
        "errors": [{"where": error.where, "message": error.message} for error in digest.errors],
        "generator": f"kpi-collector/{__version__}",
    }


def alert_payload(destination: str, text: str) -> dict[str, Any]:
    """The JSON document of an alert (stable; documented in docs/destinations.md)."""
    return {
        "type": "alert",
        "text": text,
        "destination": destination,
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": f"kpi-collector/{__version__}",
    }


#: an HTTP field name (RFC 9110 5.1: a token)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_header_name(name: str) -> str:
    """`name` when it is an HTTP header name; ValueError saying what is wrong otherwise."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+.^_`|~- only: "
            "no space or colon)"
        )
    return name


def _control(char: str) -> bool:
    """A control character a header value may not hold (a tab it may)."""
    return (ord(char) < 32 and char != "\t") or ord(char) == 127


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook(MessageDestination):
    type: ClassVar[str] = "webhook"

    url: Secret
    secret: Secret | None = None  # HMAC-SHA256 key for the signature header
    headers: dict[str, Secret] = Field(default_factory=dict)
    signature_header: str = SIGNATURE_HEADER

    @field_validator("signature_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        return _check_header_name(value)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        """Names the receiver can read: a name with a space or a colon was sent as written, and
        the receiver answered 400 ("Invalid header token"), refusing every period for good; a
        value with a line break failed every attempt. Both found at load."""
        for name, secret in value.items():
            _check_header_name(name)
            if any(_control(char) for char in secret.get()):
                raise ValueError(
                    f"the value of header {name!r} holds a line break or another control "
                    "character; a header value is one line (check it and the variable it "
                    "comes from)"
                )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: Secret) -> Secret:
        if not is_http_url(value.get()):
            raise ValueError("url must be an http(s):// URL")
        check_http_url(value.get(), secret=True)
        return value

    async def deliver(self, delivery: Delivery) -> None:
        await self.post(delivery, payload(delivery), idempotency_key=delivery.delivery_id)

    async def send_text(self, text: str) -> None:
        """An alert: `{"type": "alert", "text": ...}`, signed like a delivery."""
        document = alert_payload(self.name, text)
        # one key per alert message, the same for its retries on later runs (a later alert
        # with the same text is a new message): the alerts engine names the message
        key = f"{self.name}:alert:{message_id.get() or uuid.uuid4().hex}"
        await send_now(self, lambda via: self.post(via, document, idempotency_key=key))

    async def post(self, via: Sender, document: dict[str, Any], *, idempotency_key: str) -> None:
        """POST the document as compact JSON with the extra headers and the signature."""
        body = json.dumps(document, separators=(",", ":")).encode()
        headers = {k: v.get() for k, v in self.headers.items()}
        headers.update({"Content-Type": "application/json", "Idempotency-Key": idempotency_key})
        if self.secret is not None:
            headers[self.signature_header] = sign(self.secret.get(), body)
        response = await send(
            via,
            "POST",
            self.url.get(),
            service="the webhook",
            timeout=self.timeout,
            data=body,
            headers=headers,
        )
        if 200 <= response.status < 300:
            check_success(
                response,
                service="the webhook",
                keys=("error", "message", "errors"),
                fix="check `url` (and that no proxy or sign-in page stands in front of it)",
            )
            return
        raise status_error(
            response, service="the webhook", detail=error_detail(response, "error", "message")
        )
