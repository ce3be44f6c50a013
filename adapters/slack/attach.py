"""A Slack message's files into the conversation's inbox, and the refusals said in the thread."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import outbound
from adapters.slack.files import DEFAULT_API, attachment
from adapters.slack.inbound import Inbound
from adapters.slack.progress import SlackProgress
from bot.errors import OpsloopError
from bot.ports import ChatService

log = logging.getLogger(__name__)


async def files_in(
    service: ChatService,
    client: AsyncWebClient,
    conversation_id: str,
    inbound: Inbound,
    progress: SlackProgress,
) -> None:
    """Download the message's files with the bot token into the inbox (the service checks the
    caps and records each); a refused one is named in the thread, with why."""
    token, api_url = client.token or "", client.base_url or DEFAULT_API
    files = [attachment(f, token=token, api_url=api_url) for f in inbound.files]
    try:
        notes = await service.attach(conversation_id, files, by=inbound.incoming.author)
    except OpsloopError as exc:
        log.warning("slack files of %s not saved: %s", conversation_id, exc)
        await progress.post_text(outbound.escape("Your files could not be saved."))
        return
    refused = [f"{n.name}: {n.refused}" for n in notes if n.refused]
    if refused:
        await progress.post_text(
            outbound.escape("Not saved: " + "; ".join(refused)),
        )
