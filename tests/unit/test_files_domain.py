"""Files and feedback in the Conversation aggregate and the application: what is recorded, the
guards, the binding of a rating to an answer the conversation gave, and the replay's lines."""

from __future__ import annotations

import copy
import hashlib
import uuid

import pytest

from bot.app.application import ConversationApp
from bot.audit.replay import render
from bot.surface import Coordinates
from domain import events as ev
from domain.conversation import Conversation
from domain.conversation_files import text_sha256
from domain.errors import ConversationRenewed, InvalidTransition, UnknownAnswer

SHA = hashlib.sha256(b"log line\n").hexdigest()
HERE = Coordinates("slack", "T1", "C1", "1.1")


def answered(text: str = "The disk is full.") -> Conversation:
    conv = Conversation.start(
        platform="slack", workspace="T1", channel="C1", thread="1.1", started_by="alice"
    )
    conv.receive_message(message_key="k1", author="alice", text="why?")
    conv.answer(text=text)
    return conv


def test_a_received_file_is_recorded_with_its_name_size_hash_and_who_attached_it() -> None:
    conv = answered()
    conv.receive_file(name="app.log", size=9, sha256=SHA, by="alice")
    event = conv.collect_events()[-1]
    assert isinstance(event, ev.FileReceived)
    assert (event.name, event.bytes, event.sha256, event.by) == ("app.log", 9, SHA, "alice")


def test_a_file_record_without_a_real_sha256_is_refused_before_anything_is_recorded() -> None:
    conv = answered()
    before = conv.version
    with pytest.raises(InvalidTransition):
        conv.receive_file(name="app.log", size=9, sha256="not-a-hash", by="alice")
    with pytest.raises(InvalidTransition):
        conv.receive_file(name="", size=9, sha256=SHA, by="alice")
    assert conv.version == before


def test_a_file_can_be_refused_after_a_stop_but_nothing_is_recorded_after_new() -> None:
    conv = answered()
    conv.receive_message(message_key="k2", author="alice", text="more")
    conv.stop(reason="cancelled")
    conv.refuse_file(name="big.bin", reason="over the limit of 20 MB", by="alice")
    conv.renew(successor_id=uuid.uuid4(), by="alice")
    with pytest.raises(ConversationRenewed):
        conv.receive_file(name="app.log", size=9, sha256=SHA, by="alice")
    assert isinstance(conv.collect_events()[-2], ev.FileRefused)


def test_a_file_is_sent_only_while_the_loop_works_on_a_message() -> None:
    conv = answered()
    with pytest.raises(InvalidTransition):
        conv.send_file(name="report.txt", size=9, sha256=SHA)
    conv.receive_message(message_key="k2", author="alice", text="a report please")
    conv.send_file(name="report.txt", size=9, sha256=SHA)
    assert isinstance(conv.collect_events()[-1], ev.FileSent)


def test_feedback_on_an_answer_the_conversation_gave_is_recorded() -> None:
    conv = answered("The disk is full.")
    conv.give_feedback(by="bob", value="good", answer_sha256=text_sha256("The disk is full."))
    event = conv.collect_events()[-1]
    assert isinstance(event, ev.FeedbackGiven)
    assert (event.by, event.value) == ("bob", "good")


def test_feedback_naming_an_answer_this_conversation_never_gave_is_refused() -> None:
    conv = answered("The disk is full.")
    with pytest.raises(UnknownAnswer):
        conv.give_feedback(by="bob", value="good", answer_sha256=text_sha256("another answer"))


def test_feedback_is_good_or_bad_and_nothing_else() -> None:
    conv = answered("The disk is full.")
    with pytest.raises(InvalidTransition):
        conv.give_feedback(by="bob", value="meh", answer_sha256=text_sha256("The disk is full."))


def test_a_copy_for_one_command_does_not_share_the_answers_it_knows() -> None:
    conv = answered("first")
    clone = copy.deepcopy(conv)
    clone.receive_message(message_key="k2", author="alice", text="again")
    clone.answer(text="second")
    assert clone.answered_with(text_sha256("second"))
    assert not conv.answered_with(text_sha256("second"))


def test_the_application_records_files_and_feedback_and_the_replay_shows_them(
    memory_app: ConversationApp,
) -> None:
    cid, _ = memory_app.receive_message(
        coordinates=HERE, message_key="k1", author="alice", text="look at this log"
    )
    memory_app.record_file_received(cid, name="app.log", size=9, sha256=SHA, by="alice")
    memory_app.record_file_refused(cid, name="big.bin", reason="over 20 MB", by="alice")
    memory_app.record_file_sent(cid, name="report `x`.txt", size=9, sha256=SHA)
    memory_app.answer(cid, text="done")
    memory_app.record_feedback(cid, by="bob", value="bad", answer_sha256=text_sha256("done"))
    text = "\n".join(render(memory_app.timeline(cid), fmt="text"))
    assert f"file app.log (9 bytes, sha256 {SHA[:12]}) received from alice" in text
    assert "file big.bin from alice refused: over 20 MB" in text
    assert "file report `x`.txt (9 bytes" in text and "sent with the answer" in text
    assert f"bob rated the answer (sha256 {text_sha256('done')[:12]}) bad" in text
    markdown = "\n".join(render(memory_app.timeline(cid), fmt="markdown"))
    assert "file `` report `x`.txt `` (9 bytes" in markdown
