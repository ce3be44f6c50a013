"""The Discord glue: a ``discord.Message`` in, ``ChatService`` calls, Discord messages out.

Order of work for a question: decide (pure) -> ``receive`` records it, keyed by the Discord
message id -> only a ``recorded`` receipt gets a reaction, a thread (for a server mention),
the typing indicator and a run of the loop. A redelivered message (gateway reconnect or
RESUME) comes back ``duplicate`` and produces nothing visible.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Collection
from typing import Any, assert_never

import discord

from adapters.discord import files as discord_files
from adapters.discord.inbound import (
    Ask,
    ClickFacts,
    Ignore,
    MessageFacts,
    click_decision,
    decide,
)
from adapters.discord.outbound import (
    ApprovalButtons,
    Outgoing,
    click_reply,
    command_message,
    settled_content,
)
from adapters.discord.progress import DiscordProgress, TypingKeeper
from bot.errors import OpsloopError, one_line
from bot.ports import ChatService
from bot.surface import Command, Coordinates, Outcome

log = logging.getLogger(__name__)

REACT_RECEIVED = "\N{EYES}"
REACT_ANSWERED = "\N{WHITE HEAVY CHECK MARK}"
REACT_STOPPED = "\N{BLACK SQUARE FOR STOP}\N{VARIATION SELECTOR-16}"
REACT_FAILED = "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}"
REACT_REFUSED = "\N{NO ENTRY SIGN}"
MAX_LOOPS = 32  # loops run at once; more DMs wait, recorded and acknowledged
THREAD_NAME_CHARS = 90  # Discord allows 100
_SEEN = 1024  # commands and refusals may not be deduplicated by the log: remember them here
_NO_MENTIONS = discord.AllowedMentions.none()  # never ping @everyone from model output


class ChannelPoster:
    """Posts ``Outgoing`` values to one channel; discord.py's rate limiter paces the sends."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def post(self, message: Outgoing) -> None:
        """Send one message with its files."""
        kwargs: dict[str, Any] = {"allowed_mentions": _NO_MENTIONS}
        if message.files:
            kwargs["files"] = [
                discord.File(io.BytesIO(a.content), filename=a.filename) for a in message.files
            ]
        await self.channel.send(content=message.text or None, **kwargs)

    async def typing(self) -> None:
        """Show "typing…" once (about 10 seconds)."""
        await self.channel.typing()

    async def post_approval(self, message: Outgoing, buttons: ApprovalButtons) -> None:
        """Send the approval message with its two buttons (handled by custom_id, so they
        keep working after a restart)."""
        view = discord.ui.View(timeout=None)
        # Clicks are handled by custom_id (``DiscordSurface.click``), so discord.py need not
        # keep a view per approval message for the life of the process: a stopped view is
        # sent as components and never stored.
        view.stop()
        view.add_item(
            discord.ui.Button(
                label="Approve", style=discord.ButtonStyle.success, custom_id=buttons.approve_id
            )
        )
        view.add_item(
            discord.ui.Button(
                label="Deny", style=discord.ButtonStyle.danger, custom_id=buttons.deny_id
            )
        )
        kwargs: dict[str, Any] = {"allowed_mentions": _NO_MENTIONS, "view": view}
        if message.files:
            kwargs["files"] = [
                discord.File(io.BytesIO(a.content), filename=a.filename) for a in message.files
            ]
        await self.channel.send(content=message.text or None, **kwargs)


def facts_of(message: discord.Message, *, me: int) -> MessageFacts:
    """The plain values of ``message`` that ``inbound.decide`` needs."""
    channel = message.channel
    guild_id = message.guild.id if message.guild is not None else getattr(channel, "guild_id", None)
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return MessageFacts(
        message_id=str(message.id),
        author_id=str(message.author.id),
        author_is_bot=message.author.bot,
        content=message.content,
        guild_id=None if guild_id is None else str(guild_id),
        channel_id=str(channel.id),
        parent_id=None if parent_id is None else str(parent_id),
        mentions_me=me in message.raw_mentions,
        is_system=message.is_system(),
        files=tuple(
            discord_files.FileFacts(name=a.filename, size=a.size, url=a.url)
            for a in message.attachments
        ),
    )


def click_facts_of(interaction: discord.Interaction) -> ClickFacts:
    """The plain values of a component interaction that ``inbound.click_decision`` needs."""
    data: Any = interaction.data or {}
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return ClickFacts(
        custom_id=str(data.get("custom_id") or ""),
        user_id=str(interaction.user.id) if interaction.user else "",
        guild_id=None if interaction.guild_id is None else str(interaction.guild_id),
        channel_id=str(interaction.channel_id or ""),
        parent_id=None if parent_id is None else str(parent_id),
    )


class DiscordSurface:
    """Handles Discord messages for one bot user against a ``ChatService``."""

    def __init__(
        self,
        *,
        service: ChatService,
        mention_guilds: Collection[str] = (),
        max_loops: int = MAX_LOOPS,
    ) -> None:
        self.service = service
        self.mention_guilds = frozenset(mention_guilds)  # servers where a mention is answered
        # A burst of DMs is recorded at once but runs a bounded number of loops at a time,
        # which bounds the bot's memory; the rest wait their turn (already 👀-acknowledged).
        self._slots = asyncio.Semaphore(max_loops)
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.handled = 0  # messages fully handled (tests and the benchmark wait on it)

    async def handle(self, message: discord.Message, *, me: int) -> None:
        """React to one gateway MESSAGE_CREATE."""
        decision = decide(facts_of(message, me=me), me=str(me), mention_guilds=self.mention_guilds)
        try:
            match decision:
                case Ignore():
                    log.debug("ignored message %s: %s", message.id, decision.reason)
                case Command():
                    await self._command(message, decision)
                case Ask():
                    await self._ask(message, decision)
                case _:
                    assert_never(decision)
        finally:
            self.handled += 1

    def _first_time(self, message: discord.Message) -> bool:
        """False when this message id was handled already (a gateway redelivery)."""
        if message.id in self._seen:
            return False
        self._seen[message.id] = None
        while len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return True

    async def _command(self, message: discord.Message, command: Command) -> None:
        if not self._first_time(message):
            return
        try:
            reply = await self.service.handle(command)
        except OpsloopError as exc:
            await ChannelPoster(message.channel).post(Outgoing(text=f"That did not work: {exc}"))
            return
        if reply.duplicate:
            return
        if reply.refused:
            await _react(message, REACT_REFUSED)
        await ChannelPoster(message.channel).post(command_message(reply))
        decision = reply.decision
        if decision is not None and decision.resumes and decision.conversation_id:
            await self.run_loop(decision.conversation_id, message.channel)  # as after a click

    async def click(self, interaction: discord.Interaction) -> None:
        """Approve or Deny: deferred first (Discord's 3 s), decided by the service, then the
        message shows who decided and the loop runs on, or only the clicker hears why not."""
        decision = click_decision(click_facts_of(interaction))
        if isinstance(decision, Ignore):
            log.debug("ignored interaction %s: %s", interaction.id, decision.reason)
            return
        await interaction.response.defer()
        try:
            reply = await self.service.decide(decision)
        except Exception as exc:  # nothing recorded: the button is still there to click again
            log.exception("approval click %s failed", interaction.id)
            text = f"Your decision was not recorded ({one_line(exc)}); please click again."
            await _followup(interaction, text)
            return
        content = settled_content(interaction.message.content if interaction.message else "", reply)
        if content is not None:
            try:
                await interaction.edit_original_response(content=content, view=None)
            except discord.HTTPException as exc:
                log.warning("could not update approval message of %s: %s", interaction.id, exc)
        if reply.resumes and reply.conversation_id:
            channel = interaction.client.get_partial_messageable(int(decision.coordinates.thread))
            await self.run_loop(reply.conversation_id, channel)
        else:
            await _followup(interaction, click_reply(reply))

    async def _ask(self, message: discord.Message, decision: Ask) -> None:
        try:
            receipt = await self.service.receive(decision.incoming)
        except Exception as exc:  # nothing was recorded: the user must know to send it again
            log.exception("could not record Discord message %s", message.id)
            await _react(message, REACT_FAILED)
            text = f"I could not record your message ({one_line(exc)}). Please send it again."
            await ChannelPoster(message.channel).post(Outgoing(text=text))
            return
        if receipt.status == "duplicate":
            log.info("message %s was redelivered; already recorded", message.id)
            return
        if receipt.status == "refused":
            await _react(message, REACT_REFUSED)
            await ChannelPoster(message.channel).post(Outgoing(text=receipt.reply or "Sorry, no."))
            return
        await _react(message, REACT_RECEIVED)
        channel: discord.abc.Messageable = message.channel
        if decision.start_thread:
            channel = await _thread_for(message, decision.incoming.text)
        if decision.files:
            await self._files_in(receipt.conversation_id, decision, channel)
        outcome = await self.run_loop(receipt.conversation_id, channel)
        # Paused for an approver: not done. Run by another replica: it answers, we do not.
        if outcome is None or (outcome.awaiting is None and not outcome.elsewhere):
            await _react(message, _end_reaction(outcome))

    async def _files_in(
        self, conversation_id: str, decision: Ask, channel: discord.abc.Messageable
    ) -> None:
        """The message's attachments into the inbox; the refused ones named in the channel."""
        api = discord.http.Route.BASE
        files = [discord_files.attachment(f, api_base=api) for f in decision.files]
        try:
            notes = await self.service.attach(conversation_id, files, by=decision.incoming.author)
        except OpsloopError as exc:
            log.warning("discord files of %s not saved: %s", conversation_id, exc)
            notes = []
        refused = "; ".join(f"{n.name}: {n.refused}" for n in notes if n.refused)
        if refused:
            await ChannelPoster(channel).post(Outgoing(text=f"Not saved: {refused}"[:1900]))

    async def run_loop(
        self, conversation_id: str, channel: discord.abc.Messageable
    ) -> Outcome | None:
        """Run one conversation's loop, showing its progress in ``channel``; None if it failed."""
        poster = ChannelPoster(channel)
        async with self._slots, TypingKeeper(poster) as typing:
            progress = DiscordProgress(poster, typing=typing)
            try:
                outcome = await self.service.run(conversation_id, progress)
            except Exception as exc:  # recorded events survive; a restart resumes the loop
                log.exception("the loop of %s failed", conversation_id)
                await typing.stop()
                text = (
                    f"opsloop hit a problem ({one_line(exc)}). Your message is recorded; "
                    "the loop resumes when opsloop restarts."
                )
                await poster.post(Outgoing(text=text))
                return None
        await progress.settle(outcome)
        for message in discord_files.outgoing(outcome.files, outcome.files_skipped):
            try:
                await poster.post(message)
            except discord.HTTPException as exc:  # e.g. over the server's upload size
                log.warning("could not send files of %s: %s", conversation_id, exc)
        return outcome

    async def resume_interrupted(self, client: discord.Client) -> int:
        """Resume every Discord loop a previous process left unfinished; returns how many."""
        found = await self.service.interrupted(platform="discord")
        for conversation_id, coordinates in found:
            # A DM's thread is its channel id; a server conversation's thread is the thread id.
            channel = client.get_partial_messageable(int(coordinates.thread))
            task = asyncio.create_task(self._resume(conversation_id, channel))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if found:
            log.info("resuming %d interrupted Discord conversation(s)", len(found))
        return len(found)

    async def _resume(self, conversation_id: str, channel: discord.abc.Messageable) -> None:
        try:
            await self.run_loop(conversation_id, channel)
        except discord.HTTPException as exc:  # e.g. the DM was closed or the thread deleted
            log.warning("could not resume %s in its channel: %s", conversation_id, exc)

    def watch_approvals(self, client: discord.Client) -> None:
        """Start expiring approval requests on time (``stop_watching`` ends it); the client
        starts it once connected, beside resuming interrupted loops."""
        if self._watcher is not None:
            return

        def progress_for(_cid: str, coordinates: Coordinates) -> DiscordProgress:
            channel = client.get_partial_messageable(int(coordinates.thread))
            return DiscordProgress(ChannelPoster(channel))

        work = self.service.watch_approvals(platform="discord", progress_for=progress_for)
        self._watcher = asyncio.ensure_future(work)

    @property
    def watching(self) -> bool:
        """Whether the approval watcher runs."""
        return self._watcher is not None and not self._watcher.done()

    async def stop_watching(self) -> None:
        """Stop the approval watcher (the next process's expires what is left, on time)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def wait_background(self) -> None:
        """Wait for resumed loops (tests and benchmarks)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def _end_reaction(outcome: Outcome | None) -> str:
    if outcome is None:
        return REACT_FAILED
    if outcome.answer is not None:
        return REACT_ANSWERED
    return REACT_STOPPED if outcome.stopped_reason else REACT_ANSWERED


async def _thread_for(message: discord.Message, text: str) -> discord.abc.Messageable:
    """A thread on ``message`` for the answer; the channel itself if one cannot be opened."""
    name = text.splitlines()[0][:THREAD_NAME_CHARS] or "opsloop"
    try:
        return await message.create_thread(name=name)
    except discord.HTTPException as exc:  # e.g. no Create Public Threads permission
        log.warning("could not open a thread on %s (%s); answering in the channel", message.id, exc)
        return message.channel


async def _followup(interaction: discord.Interaction, text: str) -> None:
    """One line only the clicker sees."""
    try:
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=_NO_MENTIONS)
    except discord.HTTPException as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, exc)


async def _react(message: discord.Message, emoji: str) -> None:
    """Add a reaction; a missing permission only costs the decoration."""
    try:
        await message.add_reaction(emoji)
    except discord.HTTPException as exc:
        log.debug("could not react %s on %s: %s", emoji, message.id, exc)
