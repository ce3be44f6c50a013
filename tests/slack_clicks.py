"""Clicks on approval buttons, as Slack delivers them: ``block_actions`` payloads built from the
approval message the bot posted to the stand-in, sent signed and form-encoded (``payload=``)
over HTTP, or as an ``interactive`` envelope over Socket Mode."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from tests.slack_standin import TEAM, Call, EventSender, SlackStandIn, sign

APPROVE = "opsloop_approve"
DENY = "opsloop_deny"


def approval_posts(slack: SlackStandIn, channel: str, thread_ts: str) -> list[Call]:
    """The approval messages (the ones with buttons) posted in a thread, in order."""
    return [
        c
        for c in slack.posts_in(channel, thread_ts)
        if any(b.get("type") == "actions" for b in c.params.get("blocks") or [])
    ]


def request_id_of(posted: Call) -> str:
    """The request id an approval message's buttons carry."""
    (actions,) = [b for b in posted.params["blocks"] if b["type"] == "actions"]
    values = {e["value"] for e in actions["elements"]}
    assert len(values) == 1, values
    return str(values.pop())


def block_actions(
    posted: Call, *, user: str, action_id: str = APPROVE, value: str | None = None
) -> dict[str, Any]:
    """The payload of a click by ``user`` on a button of the approval message ``posted``."""
    p = posted.params
    ts, thread_ts, channel = p["_ts"], p.get("thread_ts"), p["channel"]
    message: dict[str, Any] = {
        "type": "message",
        "user": "U0BOT",
        "ts": ts,
        "text": p.get("text", ""),
        "blocks": p.get("blocks", []),
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
            "thread_ts": thread_ts,
        },
        "trigger_id": "1.2.3",
        "team": {"id": TEAM, "domain": "standin"},
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "ops"},
        "message": message,
        "state": {"values": {}},
        "response_url": "https://hooks.slack.invalid/actions/T/1/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"approval-{request_id_of(posted)}",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": request_id_of(posted) if value is None else value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


async def send_click(
    events: EventSender,
    payload: dict[str, Any],
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> tuple[int, float]:
    """POST a click as Slack does (``payload=<json>``, form-encoded, signed); returns (HTTP
    status, seconds until the response)."""
    assert events.session is not None
    raw = urlencode({"payload": json.dumps(payload)})
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret=secret or events.secret, timestamp=ts, body=raw),
    }
    started = time.monotonic()
    async with events.session.post(events.url, data=raw, headers=headers) as response:
        await response.read()
        return response.status, time.monotonic() - started


async def push_click(slack: SlackStandIn, payload: dict[str, Any], *, envelope_id: str) -> None:
    """Send a click over the Socket Mode connection (an ``interactive`` envelope)."""
    await slack.wait_for(lambda: bool(slack.sockets))
    await slack.sockets[-1].send_json(
        {
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": payload,
        }
    )
