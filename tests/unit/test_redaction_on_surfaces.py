"""What a surface is shown is redacted: streamed prose chunk by chunk, code, output, answers,
stop details, approval requests, outcomes and the replay command (real app on memory:)."""

from __future__ import annotations

import base64
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app.application import open_app
from bot.config import Policy
from bot.loop.redacting import RedactingProgress
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.prompt.builder import prompt_builder
from bot.surface import ApprovalRequest, Command, CommandName, Coordinates, Incoming
from domain.limits import LoopLimits
from domain.redaction import Redactor
from tests.port_fakes import FakeSandbox, WatchedModel, run_result

SECRET = "s3cr3t-v4lue-0123456789"
B64 = base64.b64encode(SECRET.encode()).decode()
FORMS = (SECRET, B64, SECRET.encode().hex(), SECRET[::-1])
REDACTOR = Redactor({"DB_TOKEN": SECRET})
HERE = Coordinates(platform="terminal", workspace="host", channel="me", thread="chat")


def texts(*values: Any) -> str:
    """Every text in ``values`` as a person would read it (not as a repr)."""
    out = []
    for value in values:
        if hasattr(value, "stdout"):  # a RunResult
            out += [value.stdout, value.stderr]
        elif hasattr(value, "code"):  # an ApprovalRequest
            out.append(value.code)
        else:
            out.append(str(value))
    return "\n".join(out)


class Everything:
    """A ``Progress`` that keeps every call with all the text it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def thinking(self) -> None:
        self.calls.append(("thinking", ""))

    async def model_text(self, chunk: str) -> None:
        self.calls.append(("model_text", chunk))

    async def block_started(self, **given: Any) -> None:
        self.calls.append(("block_started", texts(*given.values())))

    async def block_finished(self, **given: Any) -> None:
        self.calls.append(("block_finished", texts(*given.values())))

    async def approval_requested(self, request: ApprovalRequest) -> None:
        self.calls.append(("approval_requested", texts(request)))

    async def answered(self, text: str) -> None:
        self.calls.append(("answered", text))

    async def stopped(self, **given: Any) -> None:
        self.calls.append(("stopped", texts(*given.values())))

    def shown(self) -> str:
        return "\n".join(text for _, text in self.calls)

    def prose(self) -> str:
        return "".join(text for name, text in self.calls if name == "model_text")


def leaks(text: str) -> list[str]:
    """The forms of the secret in ``text``, whitespace ignored (as a reader would)."""
    squeezed = re.sub(r"\s", "", text)
    return [form for form in FORMS if form in squeezed]


async def test_nothing_the_loop_shows_holds_the_secret_it_streamed_printed_and_answered() -> None:
    app = open_app(database_url="memory:", redactor=REDACTOR)  # as the composition root opens it
    first = f"The token is {SECRET}, or {B64}.\n<helpers>\nprint('{SECRET}')\n</helpers>"
    model = WatchedModel([first, f"It is {SECRET[:8]}\n{SECRET[8:]}."])  # 16-character chunks
    sandbox = FakeSandbox(results=[run_result(stdout=f"{B64[:9]}\n{B64[9:]}\n", stderr=SECRET)])
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=sandbox,
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name, redactor=REDACTOR),
        redactor=REDACTOR,
    )
    cid, _ = app.receive_message(
        coordinates=HERE, message_key="m1", author="me", text="what is the token?"
    )
    progress = Everything()
    outcome = await runner.run(cid, progress)
    assert [name for name, _ in progress.calls].count("model_text") > 4  # it did stream
    assert leaks(progress.shown()) == [] and leaks(texts(outcome.answer, outcome.detail)) == []
    assert leaks("\n".join(m.content for prompt in model.prompts for m in prompt)) == []
    assert (
        "[redacted:DB_TOKEN]" in progress.prose() and outcome.answer == "It is [redacted:DB_TOKEN]."
    )
    assert sandbox.ran[0][1] == "print('[redacted:DB_TOKEN]')"  # the code that runs is the record's
    app.close()


@settings(max_examples=200)
@given(
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    form=st.sampled_from(FORMS),
    cuts=st.lists(st.integers(0, 120), max_size=10),
)
async def test_a_secret_split_across_streamed_chunks_never_reaches_the_surface(
    before: str, after: str, form: str, cuts: list[int]
) -> None:
    text = before + form + after
    inner = Everything()
    progress = RedactingProgress(inner, REDACTOR)
    edges = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    for start, end in zip(edges, edges[1:], strict=False):
        await progress.model_text(text[start:end])
        assert leaks(inner.prose()) == []
    await progress.answered("done")
    assert inner.prose() == REDACTOR.redact(text).text  # released in full, before the answer
    assert inner.calls[-1] == ("answered", "done")


async def test_code_output_approvals_answers_and_stop_details_are_shown_redacted() -> None:
    inner = Everything()
    progress = RedactingProgress(inner, REDACTOR)
    code = f"print('{SECRET}')"
    await progress.block_started(index=1, total=1, language="python", code=code)
    await progress.block_finished(
        index=1, total=1, language="python", code=code, result=run_result(stdout=B64, stderr=SECRET)
    )
    request = ApprovalRequest(
        "c", HERE, "r", "t1b1", 1, 1, "python", code, ("x",), ("anyone allowed here",), 0.0, "me"
    )
    await progress.approval_requested(request)
    await progress.answered(f"it is {SECRET}")
    await progress.stopped(reason="model_unavailable", detail=f"401 for key {SECRET}")
    assert leaks(inner.shown()) == []
    assert inner.shown().count("[redacted:DB_TOKEN]") == 7


async def test_the_replay_command_shows_a_log_written_before_redaction_redacted() -> None:
    old = open_app(database_url="memory:")  # an app that knew no secret stored this one
    cid, _ = old.receive_message(coordinates=HERE, message_key="m1", author="me", text=SECRET)
    model = WatchedModel(["ok"])
    runner = LoopRunner(
        app=old,
        model=model,
        sandbox=FakeSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name, redactor=REDACTOR),
        redactor=REDACTOR,
    )
    service = OpsloopService(app=old, runner=runner)
    reply = await service.handle(Command(CommandName.REPLAY, Incoming(HERE, "m2", "me", "replay")))
    assert SECRET in str(old.timeline(cid)) and SECRET not in str(reply.timeline)
    assert reply.timeline[1]["text"] == "[redacted:DB_TOKEN]"
    old.close()
