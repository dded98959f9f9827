"""A real SMTP server on 127.0.0.1 (aiosmtpd) that requires STARTTLS with a self-signed
certificate and AUTH LOGIN/PLAIN, and keeps the messages it accepted. Variants for error
tests: without TLS (then it offers neither STARTTLS nor AUTH, like a plain relay) and with
only an AUTH mechanism smtplib does not speak (XOAUTH2)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files in `folder`)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler:
    def __init__(self) -> None:
        self.messages: list[tuple[EmailMessage, Any]] = []
        self.busy_after: int | None = None  # after this many messages, one 451 (then none)
        self.greylist: set[str] = set()  # recipients refused once with 450 (then taken)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.greylist:
            self.greylist.discard(address)
            return (
                f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, "
                "please try again later"
            )
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.busy_after is not None and len(self.messages) >= self.busy_after:
            self.busy_after = None
            return "451 4.3.0 Temporary server error, please try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((message, envelope))
        return "250 Message accepted for delivery"


class _RelayFor(_Handler):
    """Takes recipients of one domain only, as a mail server that does not relay: others get
    Postfix's `554 5.7.1 <address>: Relay access denied`."""

    def __init__(self, domain: str) -> None:
        super().__init__()
        self.domain = domain

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not address.endswith("@" + self.domain):
            return f"554 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class _OAuthOnly(_Handler):
    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(
    folder: Path,
    user: str,
    password: str,
    *,
    tls: bool = True,
    oauth_only: bool = False,
    smtputf8: bool = False,
    size_limit: int | None = None,
    relay_for: str | None = None,
    busy_after: int | None = None,
    greylist: tuple[str, ...] = (),
) -> Iterator[tuple[int, Path, list[Any]]]:
    """(port, CA file to trust, accepted messages as (EmailMessage, envelope)). `smtputf8`:
    offer SMTPUTF8 (RFC 6531); `size_limit`: the SIZE it announces and enforces (bytes, RFC
    1870); `relay_for`: the only recipient domain it takes (others: 554 relay denied);
    `busy_after`: after this many messages it answers the next DATA once with 451 (a busy
    server: try again later); `greylist`: recipients it refuses once with 450, as a
    greylisting server (postgrey) does a sender it has not seen, then takes."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    handler: _Handler = (
        _OAuthOnly() if oauth_only else _RelayFor(relay_for) if relay_for else _Handler()
    )
    handler.busy_after = busy_after
    handler.greylist = set(greylist)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context if tls else None,
        require_starttls=tls,
        authenticator=authenticator,
        auth_require_tls=True,  # without TLS: no AUTH offered
        auth_exclude_mechanism=["CRAM-MD5", *(["LOGIN", "PLAIN"] if oauth_only else [])],
        enable_SMTPUTF8=smtputf8,
        data_size_limit=size_limit or 33554432,  # aiosmtpd's default, 32 MiB
    )
    controller.start()
    try:
        yield port, cert, handler.messages
    finally:
        controller.stop()
