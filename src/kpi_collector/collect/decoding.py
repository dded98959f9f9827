"""An HTTP body's `Content-Encoding` undone, in bounded steps, and only when whole.

aiohttp decompresses as it reads, but takes a gzip or brotli stream that stops before its
end as the whole page: a page cut after `12,37` of `12,374,000` stored 12.37. Here the
body is read as it came (already capped at `max_bytes`) and each coding is undone with
its output capped at `max_bytes` too (a gzip bomb stops at the cap); a stream that ends
before its end marker, or that is not valid, is an error that says so.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Any

#: more gzip members (or zstd frames) than this is no page but an attack on the decoder
MAX_MEMBERS = 100
#: more codings than this in one `Content-Encoding` is no server's answer but a way to keep
#: the decoder busy (each layer up to `max_bytes`, undone where nothing can stop it): curl
#: and urllib3 refuse a sixth too (CVE-2022-32206)
MAX_CODINGS = 5
#: input fed to a decoder per step (bytes)
_STEP = 64 * 1024


class DecodingError(ValueError):
    """The body is not valid data of its `Content-Encoding`, or is cut short (`cut`:
    worth asking again)."""

    def __init__(self, message: str, *, cut: bool = False) -> None:
        super().__init__(message)
        self.cut = cut


class TooLargeError(ValueError):
    """The decoded body is larger than the cap."""


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """`body` with the codings of `content_encoding` undone (the last applied first,
    RFC 9110 8.4): gzip, x-gzip, deflate (zlib, or raw deflate as some servers send it), br,
    zstd; identity and codings no decoder here knows are left as they are, as aiohttp
    left them. DecodingError (saying which coding and why) for a cut or corrupt stream, or
    for more than MAX_CODINGS codings; TooLargeError past `max_bytes` of output."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CODINGS:
        raise DecodingError(
            f"it names {len(codings)} codings, more than the {MAX_CODINGS} a client undoes"
        )
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is not None and body:
            body = decoder(body, max_bytes)
    return body


def _zlib(body: bytes, max_bytes: int, wbits: int, name: str, members: bool) -> bytes:
    out: list[bytes] = []
    size = 0
    data = body
    decoder = zlib.decompressobj(wbits)
    count = 1
    try:
        while True:
            room = max_bytes + 1 - size
            chunk = decoder.decompress(data, room)
            out.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(name)
            if decoder.eof:
                rest = decoder.unused_data
                # another gzip member; anything else after the end (padding) is passed over
                if members and rest.startswith(b"\x1f\x8b"):
                    count += 1
                    if count > MAX_MEMBERS:
                        raise DecodingError(f"more than {MAX_MEMBERS} {name} members")
                    decoder, data = zlib.decompressobj(wbits), rest
                    continue
                break
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif len(chunk) == room:  # output may be waiting inside the decoder
                data = b""
            else:
                raise DecodingError(
                    f"the {name} data ends before its end (the answer was cut)", cut=True
                )
    except zlib.error as exc:
        raise DecodingError(f"the {name} data is not valid ({exc})") from None
    return b"".join(out)


def _gzip(body: bytes, max_bytes: int) -> bytes:
    return _zlib(body, max_bytes, 16 + zlib.MAX_WBITS, "gzip", members=True)


def _deflate(body: bytes, max_bytes: int) -> bytes:
    # RFC 9110 deflate is a zlib stream; some servers send raw deflate (no zlib header)
    wbits = zlib.MAX_WBITS if body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    return _zlib(body, max_bytes, wbits, "deflate", members=False)


def _bounded_brotli() -> Any:
    """The Brotli module when it decodes in bounded steps (Brotli 1.2 or later: a limit on
    each step's output), else None: an older one, or none, decodes no `br` here, and so
    none is asked for (`accept_encoding`)."""
    try:
        import brotli
    except ImportError:
        return None
    return brotli if hasattr(brotli.Decompressor, "can_accept_more_data") else None


def _zstd_module() -> Any:
    """The zstd module (Python 3.14's `compression.zstd`, else `backports.zstd`), or None."""
    try:
        from compression import zstd
    except ImportError:
        try:
            from backports import zstd
        except ImportError:
            return None
    return zstd


@functools.cache
def accept_encoding() -> str:
    """The `Accept-Encoding` a request sends: the codings `decode_body` undoes on this
    machine (gzip and deflate always; br with Brotli 1.2 or later, zstd with a zstd
    decoder). aiohttp's own asks for br whenever any Brotli is installed, which the
    decoder here could not read within `max_bytes`."""
    codings = ["gzip", "deflate"]
    if _bounded_brotli() is not None:
        codings.append("br")
    if _zstd_module() is not None:
        codings.append("zstd")
    return ", ".join(codings)


def _brotli(body: bytes, max_bytes: int) -> bytes:
    brotli = _bounded_brotli()
    if brotli is None:
        # not asked for (`accept_encoding`); sent anyway, it cannot be read within the cap
        raise DecodingError(
            "br was not asked for: no Brotli 1.2 or later is installed here to undo it "
            "within max_bytes (pip install 'Brotli>=1.2'), or have the server answer in a "
            "coding the request's Accept-Encoding names"
        )
    decoder = brotli.Decompressor()
    out: list[bytes] = []
    size = 0
    try:
        for start in range(0, len(body), _STEP):
            chunk = decoder.process(body[start : start + _STEP], output_buffer_limit=_STEP)
            while True:
                out.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError("br")
                if decoder.can_accept_more_data() or decoder.is_finished():
                    break
                chunk = decoder.process(b"", output_buffer_limit=_STEP)
    except brotli.error as exc:
        raise DecodingError(f"the br data is not valid ({exc})") from None
    if not decoder.is_finished():
        raise DecodingError("the br data ends before its end (the answer was cut)", cut=True)
    return b"".join(out)


def _zstd(body: bytes, max_bytes: int) -> bytes:
    zstd = _zstd_module()
    if zstd is None:
        raise DecodingError(
            "the answer is zstd-compressed and no zstd decoder is installed (backports.zstd)"
        )
    out: list[bytes] = []
    size = 0
    data = body
    decoder = zstd.ZstdDecompressor()
    count = 1
    try:
        while True:
            room = max_bytes + 1 - size
            chunk = decoder.decompress(data, room)
            out.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError("zstd")
            if decoder.eof:
                if not decoder.unused_data:
                    break
                count += 1
                if count > MAX_MEMBERS:
                    raise DecodingError(f"more than {MAX_MEMBERS} zstd frames")
                decoder, data = zstd.ZstdDecompressor(), decoder.unused_data
                continue
            if decoder.needs_input:
                raise DecodingError(
                    "the zstd data ends before its end (the answer was cut)", cut=True
                )
            data = b""
    except zstd.ZstdError as exc:
        raise DecodingError(f"the zstd data is not valid ({exc})") from None
    return b"".join(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
