"""deploy/opsloop.example.toml is valid and shows every key of the policy."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel

from bot.config import Policy, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "opsloop.example.toml"


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    found = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= keys_of(annotation, f"{prefix}{name}.")
        else:
            found.add(f"{prefix}{name}")
    return found


def test_the_example_config_loads_as_a_valid_policy() -> None:
    assert isinstance(load_policy(EXAMPLE), Policy)


def test_the_example_config_mentions_every_key_set_or_commented_out() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    missing = []
    for key in sorted(keys_of(Policy)):
        section, _, name = key.rpartition(".")
        table = data if not section else data.get(section, {})
        # set, or an optional key shown commented out with its meaning, or as a table
        present = name in table or f"# {name} =" in text or f"# [{key}." in text
        if not present:
            missing.append(key)
    assert missing == []
