"""`type: email`: the digest by SMTP, as HTML with a plain-text alternative; alerts as plain
text, the first line as the subject. A digest larger than the server's SIZE (RFC 1870) or
`max_size` goes out as several messages, "(1/3)" in their subjects, resumed after the parts
sent.

- type: email
  host: smtp.example.com        # port 587 and STARTTLS by default; tls: ssl for port 465
  username: kpi-bot@example.com
  password: "${SMTP_PASSWORD}"
  from: KPI bot <kpi-bot@example.com>
  to: [team@example.com]
  every: week
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator

from kpi_collector.destinations.base import Delivery, MessageDestination, delivery_error
from kpi_collector.destinations.digest import NO_VALUES, Digest, DigestLine
from kpi_collector.destinations.text import cut, escape_html, grouped_lines, kpi_line, send_now
from kpi_collector.errors import DeliveryError
from kpi_collector.secrets import Secret, redact

SUBJECT_LIMIT = 150  # characters of an alert's first line in its subject
#: bytes kept free below a size limit, for the headers a server adds before it counts (Received:)
SIZE_MARGIN = 1024
#: a change's colour by the KPI's direction (`higher_is_better`); a flat one grey (#57606a)
COLOURS = {"good": "#1a7f37", "bad": "#cf222e"}


def digest_text(digest: Digest) -> str:
    """The digest as plain text (the email's text part)."""
    parts = [digest.title, ""]
    parts += grouped_lines(digest, kpi_line, lambda group: ["", group, "-" * len(group)])
    if digest.grouped:
        del parts[2]  # the first heading follows the title's blank line
    if not digest.lines:
        parts.append(NO_VALUES)
    if digest.errors:
        parts += ["", "Failing sources:", *(f"- {error.text()}" for error in digest.errors)]
    if digest.comparison:
        parts += ["", digest.comparison]
    return "\n".join(parts)


def _row(line: DigestLine) -> str:
    colour = COLOURS.get(line.trend or "", "#57606a")
    return (
        "<tr>"
        f'<td style="padding:4px 12px 4px 0"><b>{escape_html(line.title)}</b></td>'
        f'<td style="padding:4px 12px;text-align:right">{escape_html(line.formatted)}</td>'
        f'<td style="padding:4px 0 4px 12px;color:{colour}">{escape_html(line.change_text)}</td>'
        "</tr>"
    )


def digest_html(digest: Digest) -> str:
    """The digest as a small HTML document with inline styles (the email's HTML part; mail
    clients drop style sheets)."""
    rows = []
    for group, lines in digest.sections():
        if digest.grouped:
            rows.append(
                '<tr><td colspan="3" style="padding:12px 0 4px;color:#57606a;font-size:12px;'
                f'text-transform:uppercase">{escape_html(group or "Other")}</td></tr>'
            )
        rows += [_row(line) for line in lines]
    body = [f'<h2 style="margin:0 0 12px">{escape_html(digest.title)}</h2>']
    if rows:
        body.append('<table style="border-collapse:collapse">' + "".join(rows) + "</table>")
    else:
        body.append(f"<p>{NO_VALUES}</p>")
    if digest.errors:
        items = "".join(f"<li>{escape_html(error.text())}</li>" for error in digest.errors)
        body.append(f'<h3 style="margin:16px 0 4px">Failing sources</h3><ul>{items}</ul>')
    if digest.comparison:
        body.append(f'<p style="color:#57606a;font-size:12px">{escape_html(digest.comparison)}</p>')
    return (
        '<!doctype html><html><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,'
        'sans-serif;font-size:14px">' + "".join(body) + "</body></html>"
    )


class Email(MessageDestination):
    type: ClassVar[str] = "email"
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)  # 587 (starttls), 465 (ssl), 25 (none)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str | None = None  # default: the digest's title, e.g. "KPIs — week 48, 2026"
    ca_file: str | None = None  # trust this CA bundle (a company relay's own certificate)
    max_size: int | None = Field(
        default=None, ge=2048, description="bytes per message (default: the server's SIZE)"
    )

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        """A subject is one header line: with a line break (a YAML block scalar `|`, a
        `\n`) every message failed to build, each period's digest pending for good."""
        if value is not None and any(char in value for char in "\r\n"):
            raise ValueError("a subject is one line: remove its line breaks")
        return value

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if "@" not in parseaddr(v)[1]]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an email address")
        return value

    @property
    def smtp_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.tls]

    def message(
        self, delivery: Delivery, digest: Digest | None = None, part: tuple[int, int] = (1, 1)
    ) -> EmailMessage:
        """The digest's message; `part` (index, count) of a digest split to fit a size limit
        puts "(index/count)" after the subject and gives the part its own Message-ID."""
        digest = digest or Digest.from_delivery(delivery)
        index, count = part
        suffix = f" ({index}/{count})" if count > 1 else ""
        key = delivery.delivery_id + (f"#{index}" if count > 1 else "")
        # the same id for every retry of a period: mail systems can tell a repeat
        message = self._envelope(
            (self.subject or digest.title) + suffix, delivery.now.timestamp(), key
        )
        message["X-KPI-Delivery"] = delivery.delivery_id
        shown = dataclasses.replace(digest, title=digest.title + suffix)
        message.set_content(digest_text(shown))
        message.add_alternative(digest_html(shown), subtype="html")
        return message

    def messages(self, delivery: Delivery, limit: int | None) -> list[EmailMessage]:
        """The digest as one message, or — when that is over `limit` bytes (as sent: CRLF
        lines, after transfer encoding) less `SIZE_MARGIN` — its KPI lines split in order over
        as few messages as fit (the failing sources in the first). Raises
        DeliveryError(refused) when one KPI alone does not fit."""
        digest = Digest.from_delivery(delivery)
        whole = self.message(delivery, digest)
        if limit is None or wire_size(whole) <= limit - SIZE_MARGIN:
            return [whole]
        budget = limit - SIZE_MARGIN
        lines = digest.lines
        widest = (999, 999)  # sizes are measured with the widest "(i/n)"

        def size(start: int, end: int) -> int:
            errors = digest.errors if start == 0 else []
            part = dataclasses.replace(digest, lines=lines[start:end], errors=errors)
            return wire_size(self.message(delivery, part, widest))

        bounds: list[tuple[int, int]] = []
        start = 0
        while start < len(lines) or not bounds:
            if size(start, start + 1) > budget:
                raise delivery_error(
                    f"email destination {self.name!r}: a message with the one KPI "
                    f"{lines[start].kpi if lines else ''} is {size(start, start + 1):,} bytes, "
                    f"over the limit of {limit:,} (the server's SIZE or max_size): raise "
                    "max_size or use a server that takes larger messages",
                    transient=False,
                    refused=True,
                )
            low, high = start + 1, len(lines)  # the longest run of lines that fits
            while low < high:
                middle = (low + high + 1) // 2
                if size(start, middle) <= budget:
                    low = middle
                else:
                    high = middle - 1
            bounds.append((start, low))
            start = low
        count = len(bounds)
        return [
            self.message(
                delivery,
                dataclasses.replace(
                    digest, lines=lines[a:b], errors=digest.errors if a == 0 else []
                ),
                (index, count),
            )
            for index, (a, b) in enumerate(bounds, start=1)
        ]

    def alert_message(self, text: str, *, now: float | None = None) -> EmailMessage:
        """An alert as a plain-text email; its first line (cut) is the subject."""
        first = next((line.strip() for line in text.splitlines() if line.strip()), "KPI alert")
        # a fresh id per alert (the same for its retries): a later alert with the same text
        # is a new message, not a repeat
        message = self._envelope(
            cut(first, SUBJECT_LIMIT), time.time() if now is None else now, uuid.uuid4().hex
        )
        message["X-KPI-Alert"] = "1"
        message.set_content(text)
        return message

    def _envelope(self, subject: str, when: float, key: str) -> EmailMessage:
        """Subject, sender, recipients, date and a Message-ID derived from `key`."""
        message = EmailMessage()
        message["Subject"] = subject
        name, address = parseaddr(self.sender)
        message["From"] = formataddr((name, address))
        message["To"] = ", ".join(self.to)
        if self.cc:
            message["Cc"] = ", ".join(self.cc)
        message["Date"] = formatdate(when, localtime=False)
        message_id = hashlib.sha256(key.encode()).hexdigest()[:24]
        message["Message-ID"] = f"<{message_id}@{address.rpartition('@')[2] or 'kpi-collector'}>"
        return message

    async def deliver(self, delivery: Delivery) -> None:
        loop = asyncio.get_running_loop()

        def checkpoint(parts: int) -> None:  # from the SMTP thread, into the store
            asyncio.run_coroutine_threadsafe(delivery.checkpoint(parts), loop).result()

        def work(smtp: smtplib.SMTP) -> None:
            parts = self.messages(delivery, self.size_limit(smtp))
            # each message to each recipient in an envelope of its own: a server that refuses
            # one recipient (a 450 of greylisting, a 554) takes the message for the others,
            # and with one envelope for all, the refused one was left out without a word (and
            # sending again would repeat it to the rest); here the refused one fails the
            # delivery, and a retry goes on from it
            recipients = self.recipients()
            sends = [(message, rcpt) for message in parts for rcpt in recipients]

            def key(send: tuple[EmailMessage, str]) -> str:
                # a part is its subject and text (its MIME boundaries differ on every build)
                return (
                    _part_key(send[0])
                    if len(recipients) == 1
                    else f"{_part_key(send[0])}\n{send[1]}"
                )

            # after the sends an earlier attempt (or the failed delivery retried) made
            for index, (message, rcpt) in delivery.unsent(sends, key):
                smtp.send_message(message, to_addrs=[rcpt])
                checkpoint(index + 1)

        await asyncio.to_thread(self._session, work)

    def recipients(self) -> list[str]:
        """`to` and `cc` as written, each mailbox once: "Team <team@example.com>" in `to` and
        "TEAM@example.com" in `cc` are one mailbox (addresses compared without their names,
        case folded), which got every message twice."""
        seen: dict[str, str] = {}
        for written in [*self.to, *self.cc]:
            seen.setdefault(parseaddr(written)[1].casefold(), written)
        return list(seen.values())

    async def send_text(self, text: str) -> None:
        message = self.alert_message(text)
        await send_now(self, lambda _: asyncio.to_thread(self._send, message))

    def size_limit(self, smtp: smtplib.SMTP) -> int | None:
        """Bytes per message: the smaller of `max_size` and the SIZE the server announced in
        its EHLO (RFC 1870; SIZE 0 or none: no limit announced); None without either."""
        announced = smtp.esmtp_features.get("size", "").strip()
        limits = [int(announced)] if announced.isdigit() and int(announced) > 0 else []
        if self.max_size:
            limits.append(self.max_size)
        return min(limits) if limits else None

    def _send(self, message: EmailMessage) -> None:
        self._session(lambda smtp: smtp.send_message(message, to_addrs=self.recipients()))

    def _session(self, work: Callable[[smtplib.SMTP], object]) -> None:
        """Connect, secure, log in, then `work(smtp)`; every failure as a DeliveryError that
        names its cause."""
        where = f"SMTP server {self.host}:{self.smtp_port}"
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except OSError as exc:
            raise DeliveryError(f"cannot read ca_file {self.ca_file}: {exc.strerror}") from None
        step = "connect"  # which command failed: STARTTLS and AUTH both raise NotSupported
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.smtp_port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.smtp_port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.tls == "starttls":
                    step = "starttls"
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username:
                    step = "login"
                    smtp.login(self.username, self.password.get() if self.password else "")
                step = "send"
                work(smtp)
        # smtplib's errors are OSErrors too: they are mapped first, and only what is left
        # (refused connections, timeouts, resets) is the network's, worth another try
        except smtplib.SMTPException as exc:
            raise self._smtp_error(exc, where, step) from None
        except ssl.SSLError as exc:
            raise delivery_error(
                f"TLS with {where} failed ({exc.reason or exc}): check tls, port and ca_file",
                transient=False,
            ) from None
        except OSError as exc:  # TimeoutError, ConnectionRefusedError, ...
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise delivery_error(
                f"cannot reach {where}: {redact(reason)}", transient=True
            ) from None

    def _smtp_error(self, exc: smtplib.SMTPException, where: str, step: str) -> DeliveryError:
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return delivery_error(
                f"{where} refused the login ({exc.smtp_code}): check username and password",
                transient=False,
                credentials=True,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "login":
            hint = " (many do only over TLS: tls: starttls or ssl)" if self.tls == "none" else ""
            return delivery_error(
                f"{where} does not offer a login (no AUTH){hint}; if it relays without one, "
                "remove username and password",
                transient=False,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "starttls":
            return delivery_error(
                f"{where} does not offer STARTTLS: set tls: ssl (port 465) or, on a trusted "
                "network only, tls: none",
                transient=False,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "send":
            # smtplib raises this when an address is not ASCII and the EHLO lacked SMTPUTF8
            # (RFC 6531); nothing about TLS
            wide = [a for a in [self.sender, *self.to, *self.cc] if not a.isascii()]
            return delivery_error(
                f"{where} does not offer SMTPUTF8, needed for the non-ASCII address "
                f"{', '.join(wide) or '(an address)'}: use an ASCII address or a server that "
                "offers SMTPUTF8",
                transient=False,
                refused=True,
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = "; ".join(
                f"{address} ({code} {_text(text)})"
                for address, (code, text) in exc.recipients.items()
            )
            relay = any(_is_relay_denied(code, text) for code, text in exc.recipients.values())
            hint = (
                "the server does not relay for this sender: log in (username, password) or use "
                "the server of the recipients' domain"
                if relay
                else "check `to`"
            )
            # a 4xx (greylisting, a full mailbox for now) is worth another try, later
            later = all(400 <= code < 500 for code, _ in exc.recipients.values())
            return delivery_error(
                f"{where} refused the recipients {refused}: "
                + ("try again later" if later else hint),
                transient=later,
            )
        if isinstance(exc, smtplib.SMTPResponseException) and _is_too_large(
            exc.smtp_code, exc.smtp_error
        ):
            return delivery_error(
                f"{where} refused the message as too large ({exc.smtp_code} "
                f"{redact(_text(exc.smtp_error))[:200]}): a digest is split to fit the SIZE the "
                "server announces; set max_size to the server's limit where it announces none",
                transient=False,
                refused=True,
            )
        if isinstance(exc, smtplib.SMTPSenderRefused) and _is_relay_denied(
            exc.smtp_code, exc.smtp_error
        ):
            return delivery_error(
                f"{where} refused the sender {exc.sender} ({exc.smtp_code} "
                f"{redact(_text(exc.smtp_error))[:200]}): log in (username, password) or use a "
                "sender the server accepts",
                transient=False,
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return delivery_error(
                f"{where} closed the connection: {redact(str(exc)) or 'no reason given'}",
                transient=True,
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            text = _text(exc.smtp_error)
            return delivery_error(
                f"{where} answered {exc.smtp_code} {redact(text)[:200]}",
                transient=400 <= exc.smtp_code < 500,  # 4xx: try again later; 5xx: permanent
            )
        if step == "login":  # e.g. "No suitable authentication method found."
            return delivery_error(
                f"{where} offers no login method kpi-collector can use (PLAIN, LOGIN or "
                f"CRAM-MD5): {redact(str(exc))}",
                transient=False,
            )
        return delivery_error(f"{where}: {redact(str(exc))}", transient=False)


def wire_size(message: EmailMessage) -> int:
    """The message's size in bytes as smtplib sends it (and announces it in MAIL FROM SIZE=):
    flattened with CRLF line ends, after transfer encoding."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    return len(buffer.getvalue())


def _text(reply: bytes | str) -> str:
    """An SMTP reply's text on one line."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _is_too_large(code: int, reply: bytes | str) -> bool:
    """552 (RFC 5321 4.5.3.1.10: "message size exceeds fixed maximum"), or the enhanced status
    5.3.4 "message too big for system" (RFC 3463) which some servers send with 554."""
    return code == 552 or "5.3.4" in _text(reply)


def _is_relay_denied(code: int, reply: bytes | str) -> bool:
    """550/551/554 with "relay" in the text or the enhanced status 5.7.1 (RFC 3463: "delivery
    not authorized"), as Postfix ("Relay access denied") and Exim send it."""
    text = _text(reply).lower()
    return code in (550, 551, 554) and ("relay" in text or "5.7.1" in text)


def _part_key(message: EmailMessage) -> str:
    """What identifies a part of a split digest: its subject and plain text."""
    body = message.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return f"{message['Subject']}\n{text}"
