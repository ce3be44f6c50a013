"""A DM through the Discord stand-in to the real service: scripted model, SQLite, nsjail.

The service comes from ``bot.cli.bootstrap.build_chat_service``, exactly as
``opsloop serve discord`` builds it; only the model is the scripted provider. The block's
output shown in the DM is printed by Python inside nsjail, not by the script.
"""

from __future__ import annotations

from pathlib import Path

from adapters.discord.surface import REACT_ANSWERED, REACT_RECEIVED, REACT_REFUSED
from bot.config import AccessPolicy, Policy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.conftest import require_real
from tests.discord_harness import connected, dm, eventually
from tests.discord_standin import DM_CHANNEL_ID, STRANGER_ID, USER_ID

SCRIPT = """\
turns:
  - |
    Let me compute that in the sandbox.
    <helpers>
    print(6 * 7)
    </helpers>
  - The answer is 42, as the sandbox printed.
  - |
    <helpers>
    print(sum(range(10)))
    </helpers>
  - And the sum of 0..9 is 45.
"""
DM_COORDINATES = Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)


async def real_service(base: Path, *, policy: Policy | None = None) -> ChatService:
    """The real ChatService on SQLite with nsjail, or skip (laptop) / fail (CI) with why."""
    from bot.cli.bootstrap import build_chat_service
    from bot.settings import Settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    data_dir = base / "data"
    data_dir.mkdir()
    script = base / "script.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'opsloop.sqlite3'}",
        provider="scripted",
        model=str(script),
        sandbox="nsjail",
    )
    return build_chat_service(settings=settings, policy=policy or Policy())


async def test_a_dm_gets_a_real_answer_using_a_sandbox_result_and_a_reconnect_adds_nothing(
    jail_reachable_dir: Path,
) -> None:
    service = await real_service(jail_reachable_dir)
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        question = dm("what is 6 * 7?")
        await fake.dispatch("MESSAGE_CREATE", question)
        answered = (question["id"], REACT_ANSWERED)
        await fake.wait_until(lambda: answered in fake.reactions, timeout=60)

        texts = fake.texts(DM_CHANNEL_ID)
        assert texts[0] == "Let me compute that in the sandbox."
        block = next(t for t in texts if t.startswith("**Block 1/1**"))
        assert "exit 0" in block and "```python\nprint(6 * 7)\n```" in block
        assert "```\n42\n```" in block  # printed inside nsjail
        assert texts[-1] == "The answer is 42, as the sandbox printed."
        assert [r for m, r in fake.reactions if m == question["id"]] == [
            REACT_RECEIVED,
            REACT_ANSWERED,
        ]
        posted = list(fake.sent)

        await fake.force_reconnect(redeliver=[question])
        await fake.wait_until(lambda: len(fake.resumes) == 1)
        follow = dm("and the sum of 0..9?")  # sent after the redelivery, so handled after it
        await fake.dispatch("MESSAGE_CREATE", follow)
        await fake.wait_until(lambda: (follow["id"], REACT_ANSWERED) in fake.reactions, timeout=60)

        new_texts = [s.content for s in fake.sent[len(posted) :]]
        assert fake.sent[: len(posted)] == posted
        assert "```\n45\n```" in next(t for t in new_texts if t.startswith("**Block 1/1**"))
        assert new_texts[-1] == "And the sum of 0..9 is 45."
        assert fake.texts().count("The answer is 42, as the sandbox printed.") == 1
        cid = await service.current_conversation(DM_COORDINATES)
        totals = await service.totals(cid)
        assert totals.messages == 2  # the redelivered message was recognised, not recorded
        assert totals.blocks == 2

        await fake.dispatch("MESSAGE_CREATE", dm("replay"))
        await fake.wait_until(lambda: bool(fake.sent[-1].files))
        ((name, content),) = fake.sent[-1].files.items()
        assert name == f"replay-{cid[:8]}.md"
        audit = content.decode()
        assert "print(6 * 7)" in audit and "42" in audit and "And the sum of 0..9 is 45." in audit
        assert f"opsloop replay {cid}" in fake.sent[-1].content


async def test_a_stranger_is_refused_and_the_refusal_is_in_the_log(
    jail_reachable_dir: Path,
) -> None:
    access = AccessPolicy(allow_users=[USER_ID])
    service = await real_service(jail_reachable_dir, policy=Policy(discord=access))
    async with connected(service, access) as running:
        fake = running.discord
        message = dm("let me in", author=STRANGER_ID)
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_REFUSED) in fake.reactions)
        await fake.force_reconnect(redeliver=[message])
        await eventually(lambda: running.surface.handled == 2)  # the redelivery, handled
        cid = await service.current_conversation(DM_COORDINATES)
        timeline = await service.timeline(cid)  # type: ignore[attr-defined]
        refused = [e for e in timeline if "allow_users" in str(e)]
        assert len(refused) == 1
        assert message["id"] in str(refused[0]) and "let me in" in str(refused[0])
        (shown,) = fake.texts(DM_CHANNEL_ID)  # once, although the gateway delivered it twice
        assert shown.startswith("Sorry, I can't take this request") and "allow_users" in shown
        assert (await service.totals(cid)).model_turns == 0
