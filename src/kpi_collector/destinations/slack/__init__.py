"""`type: slack`: the digest as a Block Kit message with a plain-text fallback, through an
incoming webhook (`webhook_url`) or a bot token and channel (`chat.postMessage`); alerts as
a message of that text alone. What users wrote (titles, groups, failures) goes in `rich_text`
blocks, shown as written: mrkdwn has no escape for `*`, `_` or `~`.

    - {type: slack, webhook_url: "${SLACK_WEBHOOK}", every: week, compare: 7d}
    - {type: slack, token: "${SLACK_BOT_TOKEN}", channel: "#kpis", every: week}
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar
from urllib.parse import urlencode

from pydantic import PrivateAttr, model_validator

from kpi_collector.collect import jsontext
from kpi_collector.collect.http import Auth
from kpi_collector.destinations._http import Sender, maybe_sent, send, status_error
from kpi_collector.destinations.base import (
    Delivery,
    MessageDestination,
    delivery_error,
    message_id,
    message_since,
    part_key,
    plan_fingerprint,
)
from kpi_collector.destinations.digest import NO_VALUES, Digest, DigestLine
from kpi_collector.destinations.text import cut, escape_slack, isolate, send_now
from kpi_collector.errors import DeliveryError
from kpi_collector.secrets import Secret, redact_cut

# Block Kit limits (Slack API docs, "Blocks": header and section text, blocks per message)
SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50
#: characters of block text per message: Slack refuses a message whose blocks hold more than
#: about 12,000 characters in all (`msg_blocks_too_long`; the markdown block's documented
#: cumulative limit, which Slack's staff gave for every block type); 10,000 leaves room for
#: what Slack counts besides the text
SLACK_BLOCKS_TEXT = 10_000
#: characters of a message's `text` (chat.postMessage docs: longer text is truncated)
SLACK_TEXT_LIMIT = 40_000

# incoming webhooks answer an error code as plain text; these say how to fix it
_WEBHOOK_HINTS = {
    "invalid_payload": "Slack could not read the message",
    "no_text": "the message had no text",
    "invalid_token": "the webhook's token is invalid: create a new webhook and update webhook_url",
    "no_service": "the webhook was removed or disabled: create a new one and update webhook_url",
    "no_service_id": "the webhook URL is incomplete: copy it again into webhook_url",
    "no_team": "the webhook's workspace is gone: update webhook_url",
    "team_disabled": "the webhook's workspace is disabled",
    "action_prohibited": "an admin restricted posting to this channel",
    "channel_not_found": "the webhook's channel is gone: create a new webhook",
    "channel_is_archived": "the webhook's channel is archived: unarchive it or use a new webhook",
    "posting_to_general_channel_denied": "only admins may post to this channel",
    "too_many_attachments": "the message is too large",
    "invalid_blocks": "Slack refused the message's blocks",
    "msg_blocks_too_long": "the message's blocks hold too much text",
    "rollup_error": "Slack had an internal error",
}
# chat.postMessage errors (HTTP 200 with ok: false)
_API_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
#: chat.postMessage errors that refuse this message, never the next: later periods go on
_API_REFUSED = {
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_blocks_too_long",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "invalid_arguments",
}
#: chat.postMessage errors that refuse the bot token itself
_API_CREDENTIALS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
}
_API_HINTS = {
    "invalid_auth": "the bot token is invalid: check token",
    "not_authed": "no bot token was sent: check token",
    "account_inactive": "the bot token belongs to a deleted app or user: create a new token",
    "token_revoked": "the bot token was revoked: create a new token",
    "token_expired": "the bot token expired: create a new token",
    "missing_scope": "the bot token lacks the chat:write scope: add it and reinstall the app",
    "channel_not_found": "no such channel for this bot: check channel (a name like #kpis or an id)",
    "not_in_channel": "the bot is not in the channel: invite it with /invite @your-bot",
    "is_archived": "the channel is archived: unarchive it or choose another channel",
    "msg_too_long": "the message is too long",
    "invalid_blocks": "Slack refused the message's blocks",
    "msg_blocks_too_long": "the message's blocks hold too much text",
    "restricted_action": "a workspace setting keeps the bot from posting in this channel",
}


#: one line of rich text: its text elements (`_bold`, `_plain`); [] is a blank line
RichLine = list[dict[str, Any]]


def _bold(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "style": {"bold": True}}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _kpi_line(line: DigestLine, limit: int = SLACK_SECTION_LIMIT) -> RichLine:
    """`Title: 1,647 ⬆ 1.67%`, the title bold, cut ("…") so that the line keeps within
    `limit` characters: a title too long for one block never costs the value. Title and
    value are `isolate`d (right-to-left text never moves the numbers)."""
    rest = f": {isolate(line.formatted)}" + (f" {line.change_text}" if line.change_text else "")
    room = max(1, limit - len(rest))
    title = isolate(cut(line.title, room))
    if len(title) > room:  # the isolate's two marks
        title = isolate(cut(line.title, max(1, room - 2)))
    return [_bold(title), _plain(rest)]


def slack_lines(digest: Digest) -> list[RichLine]:
    """A rich text line per KPI, with a bold heading before each group (when there are
    groups)."""
    lines: list[RichLine] = []
    for group, items in digest.sections() if digest.grouped else [(None, digest.lines)]:
        if digest.grouped:
            lines += [[], [_bold(group or "Other")]]
        lines += [_kpi_line(item) for item in items]
    return lines[1:] if lines and not lines[0] else lines


def _failure_lines(digest: Digest) -> list[RichLine]:
    return [[_bold("Failing sources")], *([_plain(f"• {e.text()}")] for e in digest.errors)]


def _line_text(line: RichLine) -> str:
    return "".join(str(element["text"]) for element in line)


def rich_blocks(lines: list[RichLine], limit: int = SLACK_SECTION_LIMIT) -> list[dict[str, Any]]:
    """`lines` as `rich_text` blocks of at most `limit` characters of text each, broken only
    between lines. Rich text shows its text as written: no mrkdwn, no links, no mentions
    (Slack's Block Kit docs: the block for user-defined text)."""
    blocks: list[dict[str, Any]] = []
    current: list[RichLine] = []
    size = 0
    for line in lines:
        length = len(_line_text(line))
        if current and size + 1 + length > limit:
            blocks.append(_rich(current))
            current, size = [], 0
        if current or line:  # a block never starts with a blank line
            size += length + (1 if current else 0)
            current.append(line)
    if current:
        blocks.append(_rich(current))
    return blocks


def _rich(lines: list[RichLine]) -> dict[str, Any]:
    """One `rich_text` block of `lines`: a section whose text elements hold them, lines
    joined by newlines, neighbouring plain texts merged."""
    elements: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        for element in ([_plain("\n")] if index else []) + line:
            last = elements[-1] if elements else None
            if last is not None and "style" not in last and "style" not in element:
                last["text"] += element["text"]
            else:
                elements.append(dict(element))
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": elements}]}


def digest_text(digest: Digest) -> str:
    """The notification / fallback text of the digest's message: plain lines (sent with
    `mrkdwn` off), `&`, `<`, `>` escaped so nothing in it links or mentions."""
    lines = [digest.title, *(_line_text(line) for line in slack_lines(digest))]
    if digest.errors:
        lines += ["", *(_line_text(line) for line in _failure_lines(digest))]
    return escape_slack("\n".join(lines))


def digest_blocks(digest: Digest) -> list[dict[str, Any]]:
    """Block Kit: a header, the KPI lines in rich text blocks (≤ 3000 chars each), failures,
    context; every block of the digest, however many (`digest_messages` splits them into
    messages)."""
    blocks: list[dict[str, Any]] = [_header(digest.title)]
    blocks += rich_blocks(slack_lines(digest) or [[_plain(NO_VALUES)]])
    if digest.errors:
        blocks.append({"type": "divider"})
        blocks += rich_blocks(_failure_lines(digest))
    if digest.comparison:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": digest.comparison}]}
        )
    return blocks


def digest_messages(digest: Digest) -> list[dict[str, Any]]:
    """The digest as Slack messages (`{"text", "blocks", "mrkdwn": False}`): one when its
    blocks fit Slack's limits (50 blocks, `SLACK_BLOCKS_TEXT` characters), else the blocks
    after the header packed in order into as few messages as fit, each under its own header
    "title (2/3)" and with the text of its own blocks as the notification text. Nothing is
    cut."""
    blocks = digest_blocks(digest)
    if len(blocks) <= SLACK_MAX_BLOCKS and _text_size(blocks) <= SLACK_BLOCKS_TEXT:
        text = cut(digest_text(digest), SLACK_TEXT_LIMIT)
        return [{"text": text, "blocks": blocks, "mrkdwn": False}]
    groups = pack_blocks(blocks[1:], SLACK_MAX_BLOCKS - 1, SLACK_BLOCKS_TEXT - SLACK_HEADER_LIMIT)
    messages = []
    for index, group in enumerate(groups, start=1):
        title = cut(f"{digest.title} ({index}/{len(groups)})", SLACK_HEADER_LIMIT)
        text = escape_slack("\n".join([title, *(t for b in group for t in block_texts(b))]))
        messages.append(
            {
                "text": cut(text, SLACK_TEXT_LIMIT),
                "blocks": [_header(title), *group],
                "mrkdwn": False,
            }
        )
    return messages


def pack_blocks(
    blocks: list[dict[str, Any]], max_blocks: int, max_text: int
) -> list[list[dict[str, Any]]]:
    """`blocks` in order, in groups of at most `max_blocks` blocks and `max_text` characters
    of text (a block alone over `max_text` gets a group of its own)."""
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for block in blocks:
        length = _text_size([block])
        if groups[-1] and (len(groups[-1]) >= max_blocks or size + length > max_text):
            groups.append([])
            size = 0
        groups[-1].append(block)
        size += length
    return groups


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": cut(text, SLACK_HEADER_LIMIT), "emoji": True},
    }


def block_texts(block: dict[str, Any]) -> list[str]:
    """The texts of a header, section, rich text or context block (a divider has none), as
    shown."""
    if "text" in block:
        return [str(block["text"]["text"])]
    if block.get("type") == "rich_text":
        return [
            "".join(str(e.get("text", "")) for e in section.get("elements", []))
            for section in block.get("elements", [])
        ]
    return [str(e.get("text", "")) for e in block.get("elements", [])]


def _text_size(blocks: list[dict[str, Any]]) -> int:
    return sum(len(t) for b in blocks for t in block_texts(b))


#: the `event_type` of the metadata each bot message carries: its key, to find it again
METADATA_TYPE = "kpi_collector_message"
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")


class Slack(MessageDestination):
    """With a bot token, each message carries its key (`delivery_id` and part, or the alert's
    `message_id`) in Slack's message metadata; before a message whose earlier attempt may have
    gone out unanswered (a timeout, a 5xx, an attempt of an earlier run: a pending delivery,
    an alert whose `message_since` is set) is posted again, the
    channel's history since the attempt is searched for that key, so a message Slack took is
    not posted twice. Searching needs the `channels:history` scope (`groups:history` for a
    private channel) and the channel's id (`C0123456789`; a name is looked up with
    `conversations.list`, scope `channels:read`); without them the message is posted again
    (never lost). Incoming webhooks give no way to
    tell: a retry after a timeout may repeat the message."""

    type: ClassVar[str] = "slack"

    webhook_url: Secret | None = None
    token: Secret | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"

    #: keys of messages whose post may have gone out unanswered, and since when (epoch s)
    _uncertain: dict[str, float] = PrivateAttr(default_factory=dict)
    _channel_id: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_way(self) -> Slack:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("give either webhook_url, or token and channel")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel, e.g. channel: '#kpis'")
        return self

    def messages(self, delivery: Delivery) -> list[dict[str, Any]]:
        """The delivery's digest as one message, or several within Slack's limits."""
        return digest_messages(Digest.from_delivery(delivery))

    async def deliver(self, delivery: Delivery) -> None:
        messages = self.messages(delivery)
        # after the parts an earlier attempt (or the failed delivery retried) sent
        for position, (index, body) in enumerate(delivery.unsent(messages)):
            key = f"{delivery.delivery_id}#{index}"
            if len(messages) > 1:
                # a part is found again only as it was: a message pending since an earlier
                # run goes out with a newer run's values, split elsewhere, and going on after
                # the old first part would skip the KPIs the new first part holds beyond it
                key += "@" + plan_fingerprint([part_key(body)])[:12]
            if position == 0 and delivery.earlier_attempts and key not in self._uncertain:
                # the last attempt (maybe in an earlier run) may have posted it unanswered:
                # looked for since the period became due, not since this delivery's run
                # started (a message not begun moves on to the period's newer run)
                self._uncertain[key] = delivery.attempted_since
            await self.post(delivery, body, key=key)
            await delivery.checkpoint(index + 1)

    async def send_text(self, text: str) -> None:
        """An alert: the text field alone (what notifications show), `&`, `<`, `>` escaped so
        nothing in it turns into a link or an @channel, and `mrkdwn` off so a title's `*` or
        `_` never formats it. An alert an earlier run may have posted unanswered
        (`message_since`) is looked for in the channel's history first, as a digest is."""
        body = {"text": cut(escape_slack(text), SLACK_TEXT_LIMIT), "mrkdwn": False}
        key, since = message_id.get(), message_since.get()
        if key is not None and since is not None:
            self._uncertain.setdefault(key, since)
        await send_now(self, lambda via: self.post(via, body, key=key))

    async def post(self, via: Sender, body: dict[str, Any], *, key: str | None = None) -> None:
        """One message, through the webhook or `chat.postMessage`; `key` identifies it across
        retries (see the class docs: a bot's retry first looks whether Slack took it)."""
        if self.webhook_url is not None:
            await self._webhook(via, body)
            return
        uncertain = key is not None and key in self._uncertain
        if uncertain and await self._posted_already(via, str(key), self._uncertain[str(key)]):
            del self._uncertain[str(key)]
            return
        started = time.time()
        try:
            await self._post_message(via, body, key)
        except DeliveryError as error:
            if key is not None and maybe_sent(error):
                self._uncertain.setdefault(key, started)
            raise
        if key is not None:
            self._uncertain.pop(key, None)

    async def _api_get(self, via: Sender, method: str, query: dict[str, str]) -> dict[str, Any]:
        """A Web API read (`conversations.history`, ...): its answer, or {} when it failed
        (the caller then cannot tell, and goes on as if nothing was found)."""
        assert self.token is not None
        url = f"{self.api_url.rstrip('/')}/{method}?{urlencode(query)}"
        try:
            response = await send(
                via, "GET", url, service="Slack", timeout=self.timeout, auth=Auth(bearer=self.token)
            )
            answer = response.json() if response.status == 200 else {}
        except (DeliveryError, ValueError):
            return {}
        return answer if isinstance(answer, dict) and answer.get("ok") else {}

    async def _channel_by_name(self, via: Sender) -> str | None:
        """The id of `channel` given as a name (`#kpis`), from `conversations.list` (scope
        `channels:read`, `groups:read` for a private one); None when Slack will not say."""
        name = (self.channel or "").lstrip("#")
        cursor = ""
        for _ in range(20):  # pages of 1000 channels
            query = {
                "types": "public_channel,private_channel",
                "exclude_archived": "true",
                "limit": "1000",
                **({"cursor": cursor} if cursor else {}),
            }
            answer = await self._api_get(via, "conversations.list", query)
            for channel in answer.get("channels") or []:
                if channel.get("name") == name and isinstance(channel.get("id"), str):
                    return str(channel["id"])
            cursor = str((answer.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        return None

    async def _posted_already(self, via: Sender, key: str, since: float) -> bool:
        """Whether the channel holds a message with `key` in its metadata, posted since
        `since` (epoch seconds): False when it does not, or when Slack will not say (no
        channel id, no history scope, any error): the message then goes out again."""
        assert self.token is not None
        channel = self.channel if _CHANNEL_ID.fullmatch(self.channel or "") else self._channel_id
        if channel is None:
            channel = self._channel_id = await self._channel_by_name(via)
        if channel is None:
            return False
        cursor = ""
        for _ in range(10):  # pages of 200 messages since the attempt: a busy channel's day
            query = {
                "channel": channel,
                "oldest": f"{since - 60:.6f}",  # clocks differ a little
                "include_all_metadata": "true",
                "limit": "200",
                **({"cursor": cursor} if cursor else {}),
            }
            answer = await self._api_get(via, "conversations.history", query)
            for message in answer.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_TYPE and payload.get("key") == key:
                    return True
            cursor = str((answer.get("response_metadata") or {}).get("next_cursor") or "")
            if not answer.get("has_more") or not cursor:
                return False
        return False

    async def _webhook(self, via: Sender, body: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        response = await send(
            via,
            "POST",
            self.webhook_url.get(),
            service="Slack webhook",
            timeout=self.timeout,
            json_body=body,
        )
        if response.status == 200:
            self._check_ok(response.text().strip())
            return
        if response.status == 429:  # a JSON count of recent calls, and Retry-After
            raise status_error(response, service="Slack webhook")
        code = redact_cut(response.text().strip(), 80)
        hint = _WEBHOOK_HINTS.get(code)
        raise status_error(response, service="Slack webhook", detail=code or None, hint=hint)

    @staticmethod
    def _check_ok(text: str) -> None:
        """An incoming webhook answers exactly `ok` (a workflow trigger `{"ok": true}`); a 200
        with anything else (a proxy's sign-in page, a trigger's `{"ok": false}`) delivered
        nothing: an error that says what came (the delivery stays pending)."""
        if text == "ok":
            return
        try:
            answer = jsontext.loads(text) if text.startswith("{") else None
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True:
            return
        if isinstance(answer, dict) and answer.get("error"):
            came = f"error {redact_cut(str(answer['error']), 80)}"
        elif text.startswith("<"):
            came = "an HTML page"
        else:
            came = repr(redact_cut(text, 60)) if text else "nothing"
        raise delivery_error(
            f"Slack webhook answered HTTP 200 with {came}, not Slack's `ok`: nothing was posted; "
            "check that webhook_url is the incoming webhook's URL (and no proxy stands between)",
            transient=False,
        )

    async def _post_message(self, via: Sender, body: dict[str, Any], key: str | None) -> None:
        assert self.token is not None
        url = f"{self.api_url.rstrip('/')}/chat.postMessage"
        message = {"channel": self.channel, "unfurl_links": False, **body}
        if key is not None:
            message["metadata"] = {"event_type": METADATA_TYPE, "event_payload": {"key": key}}
        response = await send(
            via,
            "POST",
            url,
            service="Slack",
            timeout=self.timeout,
            json_body=message,
            headers={"Content-Type": "application/json; charset=utf-8"},
            auth=Auth(bearer=self.token),
        )
        if response.status != 200:
            raise status_error(response, service="Slack")
        try:
            answer = response.json()
        except Exception:
            answer = None
        if not isinstance(answer, dict):  # a proxy's page, `"ok"`, a list: nothing says ok
            came = "an HTML page" if response.text().lstrip().startswith("<") else "no JSON object"
            raise delivery_error(
                f"Slack answered chat.postMessage with {came}, not Slack's answer: nothing is "
                "taken as posted; check api_url (and that no proxy stands between)",
                transient=True,
            )
        if answer.get("ok"):
            if isinstance(answer.get("channel"), str):
                self._channel_id = answer["channel"]
            return
        code = str(answer.get("error") or "unknown_error")
        hint = _API_HINTS.get(code, "see Slack's chat.postMessage errors")
        # invalid_blocks names what was wrong: "no more than 50 items allowed [json-pointer:...]"
        details = [str(e) for e in answer.get("errors") or [] if e][:2]
        detail = f" — {redact_cut('; '.join(details), 200)}" if details else ""
        raise delivery_error(
            f"Slack refused chat.postMessage ({code}): {hint}{detail}",
            transient=code in _API_TRANSIENT,
            refused=code in _API_REFUSED,
            credentials=code in _API_CREDENTIALS,
        )
