"""The commands ``opsloop demo`` prints next, written so that each works as printed.

``opsloop`` is on PATH only once its virtualenv is activated (or it was installed with
``pipx``/``uv tool``). When the shell would not find this very ``opsloop``, the hints start
with ``source …/activate`` (relative to the current directory when under it), or, without an
activate script, name the executable by its path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

DEMO_CHAT = "chat --provider scripted --model demo"


def _shown_path(path: Path, *, cwd: Path) -> str:
    relative = os.path.relpath(path, cwd)
    return relative if not relative.startswith("..") else str(path)


def invocation(
    *, bin_dir: Path | None = None, cwd: Path | None = None, path_env: str | None = None
) -> tuple[str | None, str]:
    """(a line to run first or None, the word that runs this opsloop)."""
    bin_dir = bin_dir or Path(sys.executable).parent
    cwd = cwd or Path.cwd()
    ours = bin_dir / "opsloop"
    found = shutil.which("opsloop", path=path_env)
    if found and ours.exists() and os.path.samefile(found, ours):
        return None, "opsloop"
    if (bin_dir / "activate").is_file():
        return f"source {shlex.quote(_shown_path(bin_dir / 'activate', cwd=cwd))}", "opsloop"
    return None, shlex.quote(_shown_path(ours, cwd=cwd))


def next_steps(conversation: str, **where: object) -> list[str]:
    """The lines the demo ends with: what to run next, each a command and a comment."""
    first, opsloop = invocation(**where)  # type: ignore[arg-type]
    commands = [
        (f"{opsloop} replay {conversation}", "this conversation again, from the event log"),
        (f"{opsloop} audit verify {conversation}", "check its hash chain"),
        (f"{opsloop} conversations", "every conversation in the event log"),
        (f"{opsloop} {DEMO_CHAT}", "chat yourself; no model server needed"),
    ]
    width = max(len(command) for command, _ in commands)
    lines = ["Next, in this shell:"]
    if first:
        lines.append(f"  {first:{width}}  # puts opsloop on your PATH")
    lines += [f"  {command:{width}}  # {why}" for command, why in commands]
    lines.append("A real model: docs/providers.md in the repository (Ollama, OpenAI, Groq, …).")
    return lines
