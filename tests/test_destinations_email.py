"""`email` against a real SMTP server (its fake: aiosmtpd with STARTTLS and login): the digest
as HTML and text, alerts as plain text, and each failure explained.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kpi_collector.destinations import (
    Email,
)
from kpi_collector.destinations.email.fake import smtp_server
from kpi_collector.errors import DeliveryError
from tests.destinations import DAY, FIRED, TOKEN, pipeline

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


def plain_text(message: EmailMessage) -> str:
    """The text/plain body as sent (SMTP carries CRLF line ends)."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n").rstrip("\n")


def test_email_html_and_text_over_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "smtp-pass-123") as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="KPI bot <kpi@example.com>",
            to=["team@example.com"],
            cc=["ceo@example.com"],
            ca_file=str(ca_file),
            every="week",
        )
        p = pipeline(tmp_path, email, {"stars": 1647.0})
        assert p.process(now=DAY).exit_code == 0
        assert p.process(now=DAY + timedelta(days=1)).exit_code == 0  # same week: no second mail
        # one envelope per recipient (see the greylisting test), the same message in each
        assert sorted(rcpt for _, envelope in messages for rcpt in envelope.rcpt_tos) == [
            "ceo@example.com",
            "team@example.com",
        ]
        assert len(messages) == 2 and len({str(m) for m, _ in messages}) == 1
        message = messages[0][0]
        assert message["Subject"] == "KPIs — week 49, 2026"
        assert message["From"] == "KPI bot <kpi@example.com>"
        assert message["To"] == "team@example.com" and message["Cc"] == "ceo@example.com"
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "GitHub Stargazers: 1,647" in text
        assert "<b>GitHub Stargazers</b>" in html
        assert message["Message-ID"].endswith("@example.com>")


def test_email_wrong_password_is_terminal(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "right-password") as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="wrong-password-77",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file),
            every="day",
        )
        result = pipeline(tmp_path, email, {"stars": 1.0}).process(now=DAY)
        message = result.delivery_errors["email"]
        assert "refused the login (535)" in message and "wrong-password-77" not in message
        assert messages == []


def test_email_untrusted_certificate_is_terminal(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "pw") as (port, _ca, _messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="pw",
            sender="kpi@example.com",
            to=["team@example.com"],
            every="day",
        )
        result = pipeline(tmp_path, email, {"stars": 1.0}).process(now=DAY)
        assert "TLS with SMTP server" in result.delivery_errors["email"]


@pytest.mark.parametrize(
    ("server", "tls", "expected", "transient"),
    [
        # smtplib's errors are OSErrors: none of these may come out as "cannot reach"
        ({"tls": False}, "starttls", "does not offer STARTTLS: set tls: ssl", False),
        (
            {"tls": False},
            "none",
            "does not offer a login (no AUTH) (many do only over TLS: tls: starttls or ssl); "
            "if it relays without one, remove username and password",
            False,
        ),
        ({"oauth_only": True}, "starttls", "offers no login method kpi-collector can use", False),
        (None, "starttls", "cannot reach SMTP server 127.0.0.1:", True),  # nothing listening
        ("hang up", "starttls", "closed the connection: Connection unexpectedly closed", True),
    ],
)
def test_email_errors_say_what_went_wrong(
    tmp_path: Path, server: dict[str, bool] | str | None, tls: str, expected: str, transient: bool
) -> None:
    import socketserver
    import threading

    from kpi_collector.destinations.email.fake import free_port

    def attempt(port: int, ca_file: Path | None) -> DeliveryError:
        email = Email(
            host="127.0.0.1",
            port=port,
            tls=tls,  # type: ignore[arg-type]
            username="bot",
            password="smtp-pass-secret-123",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file) if ca_file else None,
            timeout=5,
            retries=0,
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(email.send_text("🚨 Alert: test"))
        return caught.value

    if server is None:
        error = attempt(free_port(), None)
    elif server == "hang up":  # a server that closes before its greeting
        with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as tcp:
            threading.Thread(target=tcp.serve_forever, daemon=True).start()
            try:
                error = attempt(tcp.server_address[1], None)
            finally:
                tcp.shutdown()
    else:
        assert isinstance(server, dict)
        with smtp_server(tmp_path, "bot", "smtp-pass-secret-123", **server) as (port, ca, got):
            error = attempt(port, ca)
            assert got == []
    assert expected in str(error)
    assert error.transient is transient
    assert "smtp-pass-secret-123" not in str(error)


def test_email_sends_plain_text_with_the_first_line_as_subject(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "kpi-bot", TOKEN) as (port, ca_file, mails):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="kpi-bot",
            password=TOKEN,
            sender="KPI bot <kpi@example.com>",
            to=["team@example.com"],
            cc=["boss@example.com"],
            ca_file=str(ca_file),
            timeout=5,
        )
        asyncio.run(email.send_text(FIRED + "\nsecond line"))
        [(message, envelope)] = mails
        assert message["Subject"] == FIRED
        assert message["From"] == "KPI bot <kpi@example.com>"
        assert envelope.rcpt_tos == ["team@example.com", "boss@example.com"]
        assert message.get_content_type() == "text/plain"
        assert plain_text(message) == FIRED + "\nsecond line"
        assert message["Message-ID"].endswith("@example.com>")


def test_email_refused_login_is_terminal_and_names_no_password(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "kpi-bot", TOKEN) as (port, ca_file, mails):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="kpi-bot",
            password="wrong-" + TOKEN,
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file),
            timeout=5,
            retries=3,
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(email.send_text(FIRED))
        assert not caught.value.transient and "refused the login" in str(caught.value)
        assert TOKEN not in str(caught.value) and mails == []


@pytest.mark.parametrize(
    ("server", "to", "expected", "refused"),
    [
        # issue 18 §4: this said "does not offer STARTTLS ... set tls: none" with tls: none set
        (
            {"tls": False},
            "jörg@example.de",
            "does not offer SMTPUTF8, needed for the non-ASCII address jörg@example.de: use an "
            "ASCII address or a server that offers SMTPUTF8",
            True,
        ),
        (
            {"tls": False, "size_limit": 200},
            "team@example.com",
            "refused the message as too large (552 Error: message size exceeds fixed maximum "
            "message size): a digest is split to fit the SIZE the server announces; set "
            "max_size to the server's limit where it announces none",
            True,
        ),
        (
            {"tls": False, "relay_for": "example.org"},
            "team@example.com",
            "refused the recipients team@example.com (554 5.7.1 <team@example.com>: Relay "
            "access denied): the server does not relay for this sender",
            False,
        ),
    ],
)
def test_email_smtp_refusals_name_their_cause(
    tmp_path: Path, server: dict[str, Any], to: str, expected: str, refused: bool
) -> None:
    with smtp_server(tmp_path, "bot", "smtp-pass-secret-123", **server) as (port, _, got):
        email = Email(
            host="127.0.0.1",
            port=port,
            tls="none",
            sender="kpi@example.com",
            to=[to],
            timeout=5,
            retries=0,
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(email.send_text("🚨 Alert: test"))
        assert got == []
    assert expected in str(caught.value)
    assert "STARTTLS" not in str(caught.value)
    assert caught.value.transient is False
    assert caught.value.refused is refused


def test_email_non_ascii_address_goes_out_where_the_server_offers_smtputf8(
    tmp_path: Path,
) -> None:
    with smtp_server(tmp_path, "bot", "pw", tls=False, smtputf8=True) as (port, _, got):
        email = Email(
            host="127.0.0.1",
            port=port,
            tls="none",
            sender="kpi@example.com",
            to=["jörg@example.de"],
            timeout=5,
            retries=0,
        )
        asyncio.run(email.send_text("🚨 Alert: test"))
    [(_, envelope)] = got
    assert envelope.rcpt_tos == ["jörg@example.de"]


@pytest.mark.parametrize(("size_limit", "max_size"), [(20_000, None), (None, 8_000)])
def test_a_digest_over_the_size_limit_goes_out_as_several_messages(
    tmp_path: Path, size_limit: int | None, max_size: int | None
) -> None:
    """issue 18 §2: 400 KPIs are over the SIZE the server announces (RFC 1870; aiosmtpd
    refuses more with 552) or over a configured `max_size`: the digest goes out as several
    messages that each fit, every KPI in one of them, in order; nothing is refused."""
    limit = size_limit or max_size
    assert limit is not None
    server = {"size_limit": size_limit} if size_limit else {}
    with smtp_server(tmp_path, "bot", "smtp-pass-123", **server) as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file),
            every="week",
            max_size=max_size,
            retries=0,
        )
        values = {f"kpi_{i:03d}": float(i) * 1000 for i in range(400)}
        p = pipeline(tmp_path, email, values)
        result = p.process(now=DAY)
        assert result.delivery_errors == {}
        count = len(messages)
        assert count > 1
        assert [m["Subject"] for m, _ in messages] == [
            f"KPIs — week 49, 2026 ({i}/{count})" for i in range(1, count + 1)
        ]
        assert all(len(envelope.content) <= limit for _, envelope in messages)
        lines = [line for m, _ in messages for line in plain_text(m).splitlines() if "kpi_" in line]
        assert lines == [f"github.kpi_{i:03d}: {i * 1000:,}" for i in range(400)]
        assert len({m["Message-ID"] for m, _ in messages}) == count
        (record,) = p.delivery_engine().records()
        assert (record.status, record.progress) == ("done", count)


def test_one_kpi_over_max_size_is_refused_for_good(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "smtp-pass-123", tls=False) as (port, _, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            tls="none",
            sender="kpi@example.com",
            to=["team@example.com"],
            max_size=2048,
            every="week",
            retries=0,
        )
        p = pipeline(tmp_path, email, {"stars": 1.0})
        p.kpis["github.stars"].title = "S" * 3000
        result = p.process(now=DAY)
        assert messages == []
    assert "a message with the one KPI github.stars is" in result.delivery_errors["email"]
    assert (
        "over the limit of 2,048 (the server's SIZE or max_size)"
        in (result.delivery_errors["email"])
    )
    (record,) = p.delivery_engine().records()
    assert record.status == "failed"


def test_a_split_digest_resumes_after_the_parts_the_server_took(tmp_path: Path) -> None:
    """A busy server (451) on the third part: the two parts it took are counted in the store,
    and the retry sends the rest, none twice."""
    with smtp_server(tmp_path, "bot", "smtp-pass-123", size_limit=20_000, busy_after=2) as (
        port,
        ca_file,
        messages,
    ):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file),
            every="week",
            retries=0,
        )
        values = {f"kpi_{i:03d}": float(i) * 1000 for i in range(400)}
        p = pipeline(tmp_path, email, values)
        first = p.process(now=DAY)
        assert "answered 451 4.3.0 Temporary server error" in first.delivery_errors["email"]
        assert len(messages) == 2
        (record,) = p.delivery_engine().records()
        assert (record.status, record.progress) == ("pending", 2)
        outcomes = asyncio.run(p.delivery_engine().deliver_pending())
        assert [o.ok for o in outcomes] == [True]
        count = len(messages)
        assert count > 2
        assert [m["Subject"] for m, _ in messages] == [
            f"KPIs — week 49, 2026 ({i}/{count})" for i in range(1, count + 1)
        ]


def test_a_split_digest_whose_max_size_changed_is_not_resumed_but_sent_from_the_start(
    tmp_path: Path,
) -> None:
    """Two parts went out (the server busy on the third: pending), then `max_size` changed:
    the digest now splits elsewhere, so going on after part 2 would skip or repeat KPI lines.
    The delivery is marked failed in one line naming `--from-start`, nothing more is sent;
    a retry from the start sends every part of the new split."""
    from kpi_collector.store import deliveries as ledger

    with smtp_server(tmp_path, "bot", "smtp-pass-123", size_limit=20_000, busy_after=2) as (
        port,
        ca_file,
        messages,
    ):

        def email(max_size: int | None) -> Email:
            return Email(
                host="127.0.0.1",
                port=port,
                username="bot",
                password="smtp-pass-123",
                sender="kpi@example.com",
                to=["team@example.com"],
                ca_file=str(ca_file),
                every="week",
                retries=0,
                max_size=max_size,
            )

        values = {f"kpi_{i:03d}": float(i) * 1000 for i in range(400)}
        first = pipeline(tmp_path, email(None), values)
        assert "451 4.3.0" in first.process(now=DAY).delivery_errors["email"]
        assert len(messages) == 2
        changed = pipeline(tmp_path, email(10_000), values)
        engine = changed.delivery_engine()
        (outcome,) = asyncio.run(engine.deliver_pending())
        assert not outcome.ok and outcome.refused
        assert outcome.error is not None and "\n" not in outcome.error
        assert outcome.error.startswith("email: 2 parts of this 2026-W49 delivery went out, but")
        assert "`kpi deliver --retry 2026-W49 --from-start`" in outcome.error
        assert len(messages) == 2
        (record,) = engine.records()
        assert record.status == "failed"
        assert changed.store is not None
        assert ledger.retry_failed(changed.store, "2026-W49", from_start=True) == 1
        assert [o.ok for o in asyncio.run(engine.deliver_pending())] == [True]
        resent = messages[2:]
        count = len(resent)
        assert count > 2 and all(len(envelope.content) <= 10_000 for _, envelope in resent)
        assert [m["Subject"] for m, _ in resent] == [
            f"KPIs — week 49, 2026 ({i}/{count})" for i in range(1, count + 1)
        ]
        lines = [line for m, _ in resent for line in plain_text(m).splitlines() if "kpi_" in line]
        assert lines == [f"github.kpi_{i:03d}: {i * 1000:,}" for i in range(400)]


def test_a_recipient_refused_for_now_gets_the_digest_and_the_others_get_it_once(
    tmp_path: Path,
) -> None:
    """A greylisting server refuses one recipient for now (450) and takes the others: the
    message went to them and the delivery was marked done, so that recipient never got the
    digest. Each recipient has its own envelope and its place in the delivery's progress:
    the refused one is sent again (in the run, or the next), the others never twice."""
    team, boss = "team@example.com", "boss@example.com"
    with smtp_server(tmp_path, "bot", "smtp-pass-123", greylist=(boss,)) as (port, ca, got):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="kpi@example.com",
            to=[team],
            cc=[boss],
            ca_file=str(ca),
            every="week",
        )
        p = pipeline(tmp_path, email, {"stars": 1.0})
        assert p.process(now=DAY).delivery_errors == {}
        assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
    assert sorted(rcpt for _, envelope in got for rcpt in envelope.rcpt_tos) == [boss, team]
    assert {m["To"] for m, _ in got} == {team} and {m["Cc"] for m, _ in got} == {boss}


def test_a_recipient_refused_for_good_is_named_and_the_others_get_it_once(
    tmp_path: Path,
) -> None:
    """A recipient the server never takes (554) was left out without a word; the delivery
    now stays pending naming it, and the recipients it takes got the digest once."""
    with smtp_server(tmp_path, "bot", "pw", tls=False, relay_for="example.com") as (
        port,
        _,
        got,
    ):

        def email(to: list[str]) -> Email:
            return Email(
                host="127.0.0.1",
                port=port,
                sender="kpi@example.com",
                to=to,
                tls="none",
                every="week",
                retries=0,
            )

        p = pipeline(tmp_path, email(["team@example.com", "ceo@elsewhere.org"]), {"stars": 1.0})
        message = p.process(now=DAY).delivery_errors["email"]
        assert "ceo@elsewhere.org" in message and "554" in message
    assert [envelope.rcpt_tos for _, envelope in got] == [["team@example.com"]]


def test_a_mailbox_named_twice_gets_the_digest_and_alerts_once(tmp_path: Path) -> None:
    """`to: [Team <team@example.com>]` and `cc: [TEAM@example.com]` are one mailbox: it got
    an envelope for each spelling, every digest and alert twice."""
    with smtp_server(tmp_path, "bot", "smtp-pass-123") as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="kpi@example.com",
            to=["Team <team@example.com>", "ceo@example.com"],
            cc=["TEAM@example.com", "CEO <ceo@example.com>"],
            ca_file=str(ca_file),
            every="week",
        )
        assert pipeline(tmp_path, email, {"stars": 1.0}).process(now=DAY).exit_code == 0
        asyncio.run(email.send_text(FIRED))
    assert [sorted(envelope.rcpt_tos) for _, envelope in messages] == [
        ["team@example.com"],
        ["ceo@example.com"],
        ["ceo@example.com", "team@example.com"],
    ]


@pytest.mark.parametrize("subject", ['"KPIs\\nof the week"', "|\n      KPIs\n      of the week"])
def test_a_subject_with_a_line_break_is_a_config_error(tmp_path: Path, subject: str) -> None:
    """A subject with a line break passed the config and every message then failed to build
    ("Header values may not contain linefeed"): each period's digest stayed pending for good
    behind a Python error. It is a config error at load naming the key."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: python, function: 'os:getpid'}\n"
        "destinations:\n"
        "  - type: email\n    host: smtp.example.com\n    from: kpi@example.com\n"
        f"    to: [team@example.com]\n    subject: {subject}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "subject" in str(caught.value) and "one line" in str(caught.value)
