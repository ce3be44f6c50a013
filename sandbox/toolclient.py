"""The jail's side of the tool channel, as files written into a run's scratch directory.

``tools.py`` (the module), its bytecode and ``bin/tool`` (the command) come from
``sandbox/jailside``. The bytecode is an *unchecked-hash* ``.pyc`` for this interpreter's
cache tag (``__pycache__/tools.cpython-311.pyc``): a jail Python of the same version uses it
without reading the source's time (the source is written afresh each run, and ``/opsloop``
is read-only, so it could never cache its own); another version ignores it and compiles
the source, as it would without it. That saves about 5 ms of every block that imports tools.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import py_compile
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MODULE = "tools.py"
PYCACHE = "__pycache__"
COMMAND = "bin/tool"


@dataclass(frozen=True)
class ClientPaths:
    """Where a run's client files are (host paths, all in its scratch directory)."""

    module: Path
    pycache: Path
    bin_dir: Path


@functools.cache
def _sources() -> tuple[bytes, bytes | None, bytes]:
    """The module, its unchecked-hash bytecode (None where it cannot be made) and the command."""
    package = importlib.resources.files("sandbox.jailside")
    module = package.joinpath("tools.py").read_bytes()
    command = package.joinpath("tool.py").read_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        source, compiled = Path(scratch) / MODULE, Path(scratch) / "tools.pyc"
        source.write_bytes(module)
        try:
            py_compile.compile(
                str(source),
                cfile=str(compiled),
                dfile="/opsloop/tools.py",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            bytecode: bytes | None = compiled.read_bytes()
        except (py_compile.PyCompileError, OSError):
            bytecode = None
    return module, bytecode, command


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with open(fd, "wb") as file:
        file.write(data)
        os.fchmod(fd, mode)  # whatever the umask: the jail user reads it as "others"


def _directory(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o755)
    return path


def write_client(directory: Path) -> ClientPaths:
    """Write the client into ``directory`` (read-only for everyone); where it went."""
    module, bytecode, command = _sources()
    _write(directory / MODULE, module, 0o444)
    pycache = _directory(directory / PYCACHE)
    if bytecode is not None and sys.implementation.cache_tag:
        _write(pycache / f"tools.{sys.implementation.cache_tag}.pyc", bytecode, 0o444)
    bin_dir = _directory(directory / "bin")
    _write(bin_dir / "tool", command, 0o555)
    return ClientPaths(module=directory / MODULE, pycache=pycache, bin_dir=bin_dir)
