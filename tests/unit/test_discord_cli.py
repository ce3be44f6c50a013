"""``opsloop serve discord --shards``: parsing the option."""

from __future__ import annotations

import pytest

from bot.cli.discord import parse_shards
from bot.errors import ConfigError


def test_no_shards_option_means_one_gateway_connection() -> None:
    assert parse_shards(None) == (False, None)


def test_auto_lets_discord_recommend_the_shard_count() -> None:
    assert parse_shards("auto") == (True, None)
    assert parse_shards(" AUTO ") == (True, None)


def test_a_number_fixes_the_shard_count() -> None:
    assert parse_shards("4") == (True, 4)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_anything_else_is_one_clear_error(value: str) -> None:
    with pytest.raises(ConfigError, match="--shards"):
        parse_shards(value)
