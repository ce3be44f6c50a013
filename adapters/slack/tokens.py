"""Slack's tokens told apart by their prefix, before any network call (pure).

A bot token starts ``xoxb-``, an app-level token (Socket Mode) ``xapp-``. Swapping the two is
the commonest first-hour mistake, and Slack's answer to it (``not_allowed_token_type`` or
``invalid_auth`` after a connection attempt) does not say which variable is wrong.
"""

from __future__ import annotations

BOT_PREFIX = "xoxb-"
APP_PREFIX = "xapp-"


def token_problem(*, bot_token: str | None, app_token: str | None) -> str | None:
    """One sentence on what is wrong with the tokens' prefixes, or None. ``app_token`` is
    None when it is not used (HTTP mode)."""
    bot = (bot_token or "").strip()
    if bot.startswith(APP_PREFIX):
        if app_token is not None and app_token.strip().startswith(BOT_PREFIX):
            return (
                "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped: the bot token starts xoxb-, "
                "the app-level token xapp-"
            )
        return (
            "SLACK_BOT_TOKEN is an app-level token (xapp-): use the Bot User OAuth Token "
            "(xoxb-) from the app's OAuth & Permissions page"
        )
    if bot and not bot.startswith(BOT_PREFIX):
        return "SLACK_BOT_TOKEN must start with xoxb- (the Bot User OAuth Token)"
    app = (app_token or "").strip()
    if app and not app.startswith(APP_PREFIX):
        return (
            "SLACK_APP_TOKEN must start with xapp- (an app-level token with connections:write, "
            "from the app's Basic Information page)"
        )
    return None
