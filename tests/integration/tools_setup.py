"""Shared parts of the tool registry's integration tests: registries from TOML, real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

from bot.tools.config import ToolsPolicy
from bot.tools.registry import ToolRegistry
from bot.tools.values import Caller

TESTS = Path(__file__).resolve().parents[1]
PY = sys.executable
PRINT_ARGV = str(TESTS / "print_argv.py")
STANDIN = str(TESTS / "mcp_standin.py")
ALICE = Caller(platform="slack", user="U1", channel="C1")


def q(text: str) -> str:
    """A TOML string literal."""
    return json.dumps(text)


def registry(toml: str, environ: Mapping[str, str] | None = None) -> ToolRegistry:
    """A registry of the ``[tools]`` tables in ``toml`` (written without the ``tools.`` prefix)."""
    policy = ToolsPolicy.model_validate(tomllib.loads(toml))
    return ToolRegistry.build(policy, environ=environ or {})


def free_port() -> int:
    """A loopback port with nothing listening on it now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class McpHttpStandin:
    """``tests/mcp_standin.py`` serving streamable HTTP on a loopback port, as a process."""

    def __init__(self, *, token: str) -> None:
        self.port = free_port()
        self.token = token
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The MCP endpoint."""
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        env = {**os.environ, "STANDIN_TOKEN": self.token}
        self.process = subprocess.Popen(
            [PY, STANDIN, "http", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the MCP standin did not start")

    def kill(self) -> None:
        """Kill it (as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


def gone(pid: int, *, within: float = 5.0) -> bool:
    """Wait until no live (non-zombie) process has ``pid``."""
    import psutil

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False
