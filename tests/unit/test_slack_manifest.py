"""The Slack app manifest asks for exactly the scopes and events the adapter uses."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "deploy" / "slack-manifest.yaml").read_text(encoding="utf-8"))
ADAPTER = "\n".join(
    p.read_text(encoding="utf-8") for p in (ROOT / "adapters" / "slack").glob("*.py")
)

# Web API methods the adapter calls (by slack_sdk method name) and the scope each needs.
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_startStream": "chat:write",
    "chat_appendStream": "chat:write",
    "chat_stopStream": "chat:write",
    "reactions_add": "reactions:write",
    "files_upload_v2": "files:write",
    "assistant_threads_setStatus": "assistant:write",
    "assistant_threads_setTitle": "assistant:write",
    # set_suggested_prompts (Bolt's) calls assistant.threads.setSuggestedPrompts
    "set_suggested_prompts": "assistant:write",
}
# Scopes that no Web API method names: downloading a file a person attached (its
# url_private_download, fetched with the bot token) needs files:read.
DOWNLOAD_SCOPES = {"files:read"}
EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "assistant_thread_started": "assistant:write",
    "assistant_thread_context_changed": "assistant:write",
}


def called_methods() -> set[str]:
    # "method", (``_call("chat_update", …)``) or .method( (``client.reactions_add(…)``)
    names = r"(chat_\w+|reactions_\w+|files_\w+|assistant_\w+)"
    found = {a or b for a, b in re.findall(rf'"{names}",|\.{names}\(', ADAPTER)}
    return found | set(re.findall(r"await (set_suggested_prompts)\(", ADAPTER))


def test_every_web_api_method_the_adapter_calls_has_its_scope_and_nothing_more_is_asked() -> None:
    assert called_methods() == set(METHOD_SCOPES)
    wanted = set(METHOD_SCOPES.values()) | set(EVENT_SCOPES.values()) | DOWNLOAD_SCOPES
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == wanted


def test_the_subscribed_events_are_the_ones_the_app_listens_to() -> None:
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert events == set(EVENT_SCOPES)
    listened = set(re.findall(r'self\.app\.event\("(\w+)"\)', ADAPTER))
    assert listened == {"app_mention", "message"}  # message.* all arrive as "message"
    helper = set(re.findall(r"assistant\.(thread_\w+)\(self\.", ADAPTER))
    assert helper == {"thread_started", "thread_context_changed"}  # Bolt's Assistant


def test_socket_mode_is_the_default_mode() -> None:
    assert MANIFEST["settings"]["socket_mode_enabled"] is True


def test_interactivity_is_on_for_the_approval_buttons_at_the_events_address() -> None:
    interactivity = MANIFEST["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    listened = set(re.findall(r"self\.app\.action\(outbound\.(\w+)\)", ADAPTER))
    assert listened == {"APPROVE_ACTION", "DENY_ACTION"}
    assert "app.action(FEEDBACK_ACTION)" in ADAPTER  # the feedback buttons under answers
    text = (ROOT / "deploy" / "slack-manifest.yaml").read_text(encoding="utf-8")
    urls = set(re.findall(r"#\s*request_url:\s*(\S+)", text))
    assert urls == {"https://opsloop.example.com/slack/events"}  # HTTP mode: one address
