"""`type: discord`: the digest as a Discord message through an incoming webhook, split into
messages of at most 2000 characters (a retry resumes after the parts already sent); alerts
as one message each, cut to 2000 characters.

    - {type: discord, webhook_url: "${DISCORD_WEBHOOK}", every: week, compare: 14d}

Discord's webhooks take no nonce (only a bot's Create Message does) and list no messages: a
message Discord took but answered after the timeout cannot be told from one it never got, so
the retry posts it again (a repeat rather than a digest lost).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from pydantic import field_validator

from kpi_collector.collect.http import check_http_url, is_http_url
from kpi_collector.destinations._http import Sender, error_detail, send, status_error
from kpi_collector.destinations.base import Delivery, MessageDestination, delivery_error
from kpi_collector.destinations.digest import Digest
from kpi_collector.destinations.text import (
    cut,
    escape_markdown,
    escape_markdown_inline,
    grouped_lines,
    kpi_line_within,
    send_now,
    split_lines,
)
from kpi_collector.secrets import Secret

DISCORD_LIMIT = 2000  # characters per message (Discord API docs: Execute Webhook, content)

_HINTS = {
    10015: "the webhook does not exist (deleted?): create one and update webhook_url",
    50027: "the webhook token is invalid: copy the webhook URL again into webhook_url",
    50006: "Discord refused an empty message",
    50035: "Discord refused the message's form",
}


def digest_messages(digest: Digest, limit: int = DISCORD_LIMIT) -> list[str]:
    """The digest as Discord messages: the bold title, a line per KPI (`**Title**: 1,647 ⬆
    1.67%`), the failing sources; what users wrote (titles, groups, failures) escaped, shown
    as written (no markup, no mentions); split between lines into messages of at most `limit`
    characters."""
    lines = [
        f"**{digest.title}**",
        *grouped_lines(
            digest,
            lambda line: kpi_line_within(
                line, limit, "**", escape_markdown, escape_markdown_inline
            ),
            lambda group: ["", f"__{escape_markdown(group)}__"],
        ),
    ]
    if digest.errors:
        lines += [
            "",
            "⚠️ **Failing sources**",
            *(f"- {escape_markdown(error.text())}" for error in digest.errors),
        ]
    return split_lines(lines, limit)


class Discord(MessageDestination):
    type: ClassVar[str] = "discord"

    webhook_url: Secret
    username: str | None = None
    avatar_url: str | None = None
    thread_id: str | None = None  # post into a thread of a forum or text channel

    @field_validator("username")
    @classmethod
    def _webhook_name(cls, value: str | None) -> str | None:
        """Discord refuses (400, 50035) every message whose webhook name is not 1-80
        characters or holds "clyde" or "discord" (its docs: webhook names): found at load,
        not as a refused digest every period."""
        if value is None:
            return value
        name = " ".join(value.split())
        if not 1 <= len(name) <= 80:
            raise ValueError("Discord takes a webhook name (username) of 1 to 80 characters")
        taken = [word for word in ("clyde", "discord") if word in name.lower()]
        if taken:
            raise ValueError(f"Discord refuses a webhook name (username) holding {taken[0]!r}")
        return name

    @field_validator("thread_id")
    @classmethod
    def _snowflake(cls, value: str | None) -> str | None:
        """Discord refuses (400, 50035 "is not snowflake") every message to a thread id that
        is no number: found at load, not as a digest refused for good every period."""
        if value is not None and not value.strip().isdigit():
            raise ValueError(
                f"{value!r} is not a Discord thread id (a number: right-click the thread, "
                "Copy Thread ID)"
            )
        return None if value is None else value.strip()

    @field_validator("avatar_url")
    @classmethod
    def _avatar(cls, value: str | None) -> str | None:
        """Discord refuses (400, 50035 "Not a well formed URL.") every message whose
        avatar_url is no http(s) URL: found at load, not as a digest refused for good every
        period."""
        if value is not None:
            check_http_url(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: Secret) -> Secret:
        if not is_http_url(value.get()):
            raise ValueError("webhook_url must be an https:// URL from Discord's channel settings")
        check_http_url(value.get(), secret=True)
        return value

    async def deliver(self, delivery: Delivery) -> None:
        messages = digest_messages(Digest.from_delivery(delivery))
        # after the parts an earlier attempt (or the failed delivery retried) sent
        for index, content in delivery.unsent(messages):
            await self.post(delivery, content)
            await delivery.checkpoint(index + 1)

    async def send_text(self, text: str) -> None:
        """An alert: plain text (markup escaped, mentions never ping) in one message."""
        content = cut(escape_markdown(text), DISCORD_LIMIT)
        await send_now(self, lambda via: self.post(via, content))

    async def post(self, via: Sender, content: str) -> None:
        body: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
        if self.username:
            body["username"] = self.username
        if self.avatar_url:
            body["avatar_url"] = self.avatar_url
        query = {"wait": "true", **({"thread_id": self.thread_id} if self.thread_id else {})}
        base = self.webhook_url.get()
        url = f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"
        response = await send(
            via, "POST", url, service="Discord", timeout=self.timeout, json_body=body
        )
        if response.status == 204:
            return
        if response.status == 200:
            try:
                created = response.json()
            except Exception:  # an HTML page from a proxy or portal
                created = None
            if isinstance(created, dict) and created.get("id"):
                return
            came = "an HTML page" if response.text().lstrip().startswith("<") else "something else"
            raise delivery_error(
                f"Discord answered HTTP 200 with {came}, not the message it created: nothing "
                "was posted; check that webhook_url is the webhook's URL (and no proxy stands "
                "between)",
                transient=False,
            )
        detail = error_detail(response, "message", "code")
        payload: Any = None
        try:
            payload = response.json()
        except Exception:  # an HTML error page from a proxy
            payload = None
        code = payload.get("code") if isinstance(payload, dict) else None
        retry_after = None
        if isinstance(payload, dict) and isinstance(payload.get("retry_after"), int | float):
            retry_after = float(
                payload["retry_after"]
            )  # Discord's JSON is more precise than the header
        hint = _HINTS.get(code) if isinstance(code, int) else None
        raise status_error(
            response, service="Discord", detail=detail, hint=hint, retry_after=retry_after
        )
