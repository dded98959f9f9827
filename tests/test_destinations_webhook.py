"""`webhook` against a local receiver (its fake): signed documents with an idempotency key,
for deliveries and alerts, retried with the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kpi_collector.destinations import (
    Webhook,
)
from kpi_collector.destinations.webhook import sign
from kpi_collector.destinations.webhook.fake import FakeReceiver
from tests.destinations import FIRED, MONDAY, TOKEN, make

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")
KEY = "alert-hmac-key-55e1d0"  # the HMAC key alerts are signed with


@pytest.fixture
def hooks() -> Iterator[FakeReceiver]:
    with FakeReceiver.serve(TOKEN) as fake:
        yield fake


def test_webhook_is_signed_and_carries_an_idempotency_key(
    tmp_path: Path, hooks: FakeReceiver
) -> None:
    hook = Webhook(url=hooks.hook_url, secret="shared-hmac-secret", every="day")
    assert make(tmp_path, hook).process(now=MONDAY).exit_code == 0
    ((body, headers),) = hooks.hooks
    assert headers["X-KPI-Signature-256"] == sign("shared-hmac-secret", body)
    assert headers["Idempotency-Key"] == "webhook:2026-11-23"
    document = json.loads(body)
    assert document["period"] == "2026-11-23"
    assert document["values"][0]["kpi"] == "github.stars" and document["values"][0]["value"] == 1.0


def test_the_webhook_posts_a_signed_alert_document(hooks: FakeReceiver) -> None:
    webhook = Webhook(
        name="ops", url=hooks.hook_url, secret=KEY, headers={"Authorization": "Bearer x"}
    )
    asyncio.run(webhook.send_text(FIRED))
    [(raw, headers)] = hooks.hooks
    body = json.loads(raw)
    assert body["type"] == "alert" and body["text"] == FIRED and body["destination"] == "ops"
    assert body["generator"].startswith("kpi-collector/") and body["sent_at"]
    expected = "sha256=" + hmac.new(KEY.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-KPI-Signature-256"], expected)
    assert headers["Authorization"] == "Bearer x"
    assert headers["Idempotency-Key"].startswith("ops:alert:")


def test_the_webhook_retries_a_server_error_with_the_same_idempotency_key(
    hooks: FakeReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks.fail_next(503, "<html>busy</html>")
    keys: list[str] = []
    original = Webhook.post

    async def spy(
        self: Webhook, via: Any, document: dict[str, Any], *, idempotency_key: str
    ) -> None:
        keys.append(idempotency_key)
        await original(self, via, document, idempotency_key=idempotency_key)

    monkeypatch.setattr(Webhook, "post", spy)
    asyncio.run(Webhook(url=hooks.hook_url, retries=2).send_text(FIRED))
    assert len(keys) == 2 and keys[0] == keys[1]
    assert [json.loads(raw)["text"] for raw, _ in hooks.hooks] == [FIRED]
    asyncio.run(Webhook(url=hooks.hook_url, retries=2).send_text(FIRED))
    assert len(set(keys)) == 2  # a later alert is a new message


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (
            "Ungültiges Feld „title“".encode("cp1252"),
            "text/plain; charset=windows-1252",
            "Ungültiges Feld „title“",
        ),
        (
            "無効なフィールド".encode("shift_jis"),
            "text/plain; charset=Shift_JIS",
            "無効なフィールド",
        ),
        (
            '{"error": "champ non validé"}'.encode("latin-1"),
            "application/json; charset=iso-8859-1",
            "champ non validé",
        ),
        ('{"error": "ünïcode"}'.encode(), "application/json; charset=iso-8859-1", "ünïcode"),
    ],
)
def test_an_error_body_is_shown_in_the_charset_it_declares(
    body: bytes, content_type: str, shown: str
) -> None:
    """A destination's error body in windows-1252, Shift_JIS or Latin-1 was read as UTF-8
    (`Ungltiges`, mojibake); it is read in the charset its `Content-Type` declares (a JSON
    body that is UTF-8 stays UTF-8, as it is parsed)."""
    from kpi_collector.collect.http import Response
    from kpi_collector.destinations._http import error_detail

    answer = Response(400, "http://127.0.0.1:9/hook", {"Content-Type": content_type}, body)
    assert error_detail(answer, "error") == shown


def test_a_moved_receiver_keeps_the_delivery_pending(tmp_path: Path, hooks: FakeReceiver) -> None:
    """A receiver that moved for good (http to https, a new path) answers 301 without taking
    the POST: a client that follows it sends it on as a GET without its body, which a catch
    hook takes as an empty hook (200), and the period was marked delivered with nothing in
    it. A 301 is an error naming where it points (origin only: the path may hold the secret)
    and the delivery stays pending; the next run sends the document once."""
    status = 301
    hooks.fail_next(status, "", {"Location": f"/hook?key={TOKEN}"})
    p = make(tmp_path, Webhook(url=hooks.hook_url, every="day"))
    first = p.process(now=MONDAY)
    message = first.delivery_errors["webhook"]
    assert f"HTTP {status}" in message and hooks.url in message and TOKEN not in message
    assert hooks.hooks == []
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert p.process(now=MONDAY).exit_code == 0
    ((body, _),) = hooks.hooks
    assert json.loads(body)["period"] == "2026-11-23"


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirect_that_keeps_the_body_is_followed(
    tmp_path: Path, hooks: FakeReceiver, status: int
) -> None:
    """307 and 308 keep the method and the body (RFC 9110): followed on the same host, the
    document arrives once, signed and with its idempotency key."""
    hooks.fail_next(status, "", {"Location": f"/hook?key={TOKEN}"})
    hook = Webhook(url=f"{hooks.url}/old-hook", secret="shared-hmac-secret", every="day")
    assert make(tmp_path, hook).process(now=MONDAY).exit_code == 0
    ((body, headers),) = hooks.hooks
    assert json.loads(body)["period"] == "2026-11-23"
    assert headers["X-KPI-Signature-256"] == sign("shared-hmac-secret", body)
    assert headers["Idempotency-Key"] == "webhook:2026-11-23"


def test_a_redirect_to_another_host_is_not_followed_with_the_secrets(
    tmp_path: Path, hooks: FakeReceiver
) -> None:
    """A 307 to another host would carry the signature and the configured headers (a bearer
    token) there: it is an error naming that origin, and nothing is sent to it."""
    other = hooks.url.replace("127.0.0.1", "localhost")
    hooks.fail_next(307, "", {"Location": f"{other}/hook?key={TOKEN}"})
    hook = Webhook(url=hooks.hook_url, headers={"Authorization": "Bearer x"}, every="day")
    p = make(tmp_path, hook)
    message = p.process(now=MONDAY).delivery_errors["webhook"]
    assert "HTTP 307" in message and other in message and TOKEN not in message
    assert hooks.hooks == []
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        # a proxy's or single sign-on's page in front of the receiver
        (
            "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to "
            "continue</body></html>",
            "text/html; charset=utf-8",
            "an HTML page",
        ),
        # a bot framework or workflow trigger that answers its errors with 200 (Slack-style)
        ('{"ok": false, "error": "invalid_payload"}', "application/json", "invalid_payload"),
        ('{"success": false, "message": "schema mismatch"}', "application/json", "schema"),
        ('{"status": "error", "message": "quota exceeded"}', "application/json", "quota"),
        ('{"status": "FAILED"}', "application/json", "FAILED"),
        # a Google Apps Script web app answers 200 whatever happened; its common form says
        ('{"result": "error", "error": {"name": "Exception"}}', "application/json", "error"),
        ('{"error": "invalid signature"}', "application/json", "invalid signature"),
    ],
    ids=[
        "html-page",
        "ok-false",
        "success-false",
        "status-error",
        "status-failed",
        "result-error",
        "error",
    ],
)
def test_a_2xx_whose_body_says_it_failed_keeps_the_delivery_pending(
    tmp_path: Path, hooks: FakeReceiver, body: str, content_type: str, shown: str
) -> None:
    """A 200 that is no success in the receiver's own terms (a sign-in page, `{"ok": false}`,
    `{"success": false}`, `{"status": "error"}`) was taken as delivered and the period lost:
    it is an error saying what came, the delivery stays pending and the next run sends it."""
    hooks.fail_next(200, body, {"Content-Type": content_type})
    p = make(tmp_path, Webhook(url=hooks.hook_url, every="day"))
    first = p.process(now=MONDAY)
    message = first.delivery_errors["webhook"]
    assert "HTTP 200" in message and shown in message and TOKEN not in message
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert p.process(now=MONDAY).exit_code == 0
    ((raw, _),) = hooks.hooks
    assert json.loads(raw)["period"] == "2026-11-23"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("", "text/plain"),
        ("OK", "text/plain"),
        ("1", "text/plain"),  # Microsoft Teams' success
        ('{"status": "success", "id": "8f1c"}', "application/json"),  # Zapier's
        ('{"ok": true}', "application/json"),
        ('{"error": null, "received": 3}', "application/json"),
        ('{"error": "", "errors": []}', "application/json"),
        ('{"result": "success", "row": 12}', "application/json"),  # Apps Script's form's
        ("Accepted", "text/plain"),  # Make's
        ('[{"queued": true}]', "application/json"),
    ],
)
def test_a_2xx_with_a_receivers_success_is_a_delivery(
    tmp_path: Path, hooks: FakeReceiver, body: str, content_type: str
) -> None:
    """What receivers answer when they took the document stays a delivery (a mistaken
    failure would send the period again on every run)."""
    hooks.fail_next(200, body, {"Content-Type": content_type})
    p = make(tmp_path, Webhook(url=hooks.hook_url, every="day"))
    assert p.process(now=MONDAY).delivery_errors == {}
    (record,) = p.delivery_engine().records()
    assert record.status == "done"


@pytest.mark.parametrize("status", [302, 303])
def test_a_receiver_that_redirects_after_taking_the_post_got_it_once(
    tmp_path: Path, hooks: FakeReceiver, status: int
) -> None:
    """Post/Redirect/Get: a receiver takes the document, then answers 303 (or 302, as a
    Google Apps Script web app does) to a page with its result. The delivery is done, and
    the document went once (no retry sends it again)."""
    hooks.then_redirect = status
    p = make(tmp_path, Webhook(url=hooks.hook_url, every="day"))
    assert p.process(now=MONDAY).delivery_errors == {}
    assert p.process(now=MONDAY).delivery_errors == {}
    ((body, _),) = hooks.hooks
    assert json.loads(body)["period"] == "2026-11-23"


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ("signature_header: 'X Signature:'", "'X Signature:' is not an HTTP header name"),
        ("headers: {'Bad Header': v}", "'Bad Header' is not an HTTP header name"),
        ("headers: {'X-Key:': v}", "'X-Key:' is not an HTTP header name"),
        ("headers: {X-Key: '${KPI_TEST_TWO_LINES}'}", "holds a line break"),
    ],
)
def test_a_header_the_receiver_cannot_read_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: str, said: str
) -> None:
    """A header name with a space or a colon went out as written and the receiver answered
    400 "Invalid header token": every period's delivery was refused for good (marked
    failed); a value with a line break failed every attempt as a connection problem. Both
    are config errors at load, naming the key and never the value."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    monkeypatch.setenv("KPI_TEST_TWO_LINES", f"{TOKEN}\nX-Injected: 1")
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: python, function: 'os:getpid'}\n"
        f"destinations:\n  - {{type: webhook, url: 'https://hooks.example/x', {keys}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert said in str(caught.value) and TOKEN not in str(caught.value)
    good = Webhook(url="https://hooks.example/x", headers={"X-Key": "v\t1"}).headers
    assert list(good) == ["X-Key"]
