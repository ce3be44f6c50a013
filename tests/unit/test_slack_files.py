"""Where the Slack bot token may go, and the files a message event carries (pure)."""

from __future__ import annotations

from adapters.slack.files import files_of, token_may_go_to
from adapters.slack.inbound import ATTACHED_ONLY, Inbound, inbound_from_event

SLACK = "https://slack.com/api/"


def test_the_token_goes_to_slacks_own_hosts_over_https_only() -> None:
    assert token_may_go_to("https://files.slack.com/files-pri/T1-F1/a.log", api_url=SLACK)
    assert token_may_go_to("https://slack.com/api/files.info", api_url=SLACK)
    assert not token_may_go_to("http://files.slack.com/files-pri/T1-F1/a.log", api_url=SLACK)
    assert not token_may_go_to("https://files.slack.com.evil.example/a", api_url=SLACK)
    assert not token_may_go_to("https://evilslack.com/a", api_url=SLACK)
    assert not token_may_go_to("https://user@files.slack.com/a", api_url=SLACK)
    assert not token_may_go_to("https://[::1/a", api_url=SLACK)


def test_with_slack_api_url_set_the_token_goes_to_that_origin_only() -> None:
    api = "http://127.0.0.1:8123/api/"
    assert token_may_go_to("http://127.0.0.1:8123/files-pri/F1/a.log", api_url=api)
    assert not token_may_go_to("http://127.0.0.1:9999/files-pri/F1/a.log", api_url=api)
    assert not token_may_go_to("https://files.slack.com/files-pri/F1/a.log", api_url=api)


def test_a_message_of_files_only_is_a_message_with_its_files() -> None:
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel_type": "im",
        "user": "U1",
        "channel": "D1",
        "ts": "1.0",
        "text": "",
        "files": [{"id": "F1", "name": "a.log", "size": 3, "url_private_download": "https://x"}],
    }
    inbound = inbound_from_event(event, kind="message", team_id="T1", bot_user_id="UB")
    assert isinstance(inbound, Inbound)
    assert inbound.incoming.text == ATTACHED_ONLY and inbound.command is None
    assert [(f.name, f.size, f.url) for f in inbound.files] == [("a.log", 3, "https://x")]


def test_file_objects_without_a_usable_size_or_url_are_kept_with_none_and_empty() -> None:
    (file,) = files_of({"files": [{"id": "F2", "size": True}, "junk"]})
    assert (file.name, file.size, file.url) == ("F2", None, "")
