"""Slack's AI app surface, the pure parts: feedback clicks, and [slack] suggested_prompts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.slack.assistant import FEEDBACK_ACTION, feedback_blocks, feedback_from_action
from bot.config import Policy
from bot.surface import Coordinates

SHA = "a" * 64


def click(value: str, *, action_id: str = FEEDBACK_ACTION, thread_ts: str = "1.0") -> dict:
    return {
        "user": {"id": "U1"},
        "team": {"id": "T1"},
        "channel": {"id": "D1"},
        "container": {"channel_id": "D1", "thread_ts": thread_ts},
        "message": {"thread_ts": thread_ts},
        "actions": [{"action_id": action_id, "value": value}],
    }


def test_a_feedback_click_names_the_thread_the_clicker_the_value_and_the_answer() -> None:
    feedback = feedback_from_action(click(f"good:{SHA}"))
    assert feedback is not None
    assert feedback.coordinates == Coordinates("slack", "T1", "D1", "1.0")
    assert (feedback.by, feedback.value, feedback.answer_sha256) == ("U1", "good", SHA)


def test_clicks_that_are_not_feedback_or_lack_a_part_are_ignored() -> None:
    assert feedback_from_action(click(f"good:{SHA}", action_id="opsloop_approve")) is None
    assert feedback_from_action(click("good")) is None
    assert feedback_from_action(click(f"good:{SHA}", thread_ts="")) is None


def test_the_buttons_carry_both_values_bound_to_the_answer() -> None:
    (block,) = feedback_blocks(SHA)
    (element,) = block["elements"]
    assert block["type"] == "context_actions" and element["type"] == "feedback_buttons"
    assert element["positive_button"]["value"] == f"good:{SHA}"
    assert element["negative_button"]["value"] == f"bad:{SHA}"


def test_suggested_prompts_default_to_a_few_and_at_most_four_short_ones_are_accepted() -> None:
    assert 0 < len(Policy().slack.suggested_prompts) <= 4
    with pytest.raises(ValidationError):
        Policy.model_validate({"slack": {"suggested_prompts": ["a", "b", "c", "d", "e"]}})
    with pytest.raises(ValidationError, match="1 to 200 characters"):
        Policy.model_validate({"slack": {"suggested_prompts": ["x" * 201]}})
