"""A pytest plugin: the sandbox's one-shot jails are bubblewrap's (issue 16; bench only).

The adversarial suite, unchanged, against bwrap instead of nsjail, to choose between them
on the suite and not only on speed (``bench/results/sandbox-jails.md``):

    PYTHONPATH=bench CI=true .venv/bin/python -m pytest -p bwrap_jail -p no:randomly \\
        tests/integration/test_sandbox_adversarial*.py -k "not warm"

Every one-shot block's nsjail argv, as opsloop builds it, is translated option by option
(``bench_jails.bwrap_from_nsjail``) and run by bwrap under the shim (cgroups: our memory
run cgroup and a pids cgroup of its own; the rlimits; the workspace's uid). Its status is
bwrap's exit status (128 + n for a signal n: bwrap writes no log). Warm kernels keep
nsjail: their jails are nsjail's, so their runs are left out (``-k "not warm"``).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_jails

from sandbox import jail as jail_module
from sandbox import process
from sandbox.jail_log import JailStatus
from sandbox.limits import MIB

_BPF: dict[str, Path] = {}
_spawn = process._spawn


def bpf_fd() -> int:
    """The policy's BPF program (compiled once), opened for one run: bwrap reads it from
    the fd's offset, so every run needs its own."""
    if "path" not in _BPF:
        directory = Path(tempfile.mkdtemp(prefix="opsloop-bwrap-"))
        _BPF["path"] = bench_jails.compile_bpf(directory)
    return os.open(_BPF["path"], os.O_RDONLY)


def spawn(argv: Sequence[str], **kwargs: Any) -> Any:
    """``sandbox.process._spawn``, keeping the policy's fd open in bwrap."""
    if argv and argv[0] == "bwrap":
        kwargs["pass_fds"] = (int(argv[list(argv).index("--seccomp") + 1]),)
    return _spawn(argv, **kwargs)


def status(log_file: Path, outcome: process.ProcessOutcome) -> JailStatus:
    """How the block ended, from bwrap's exit status (no log to read)."""
    code = outcome.returncode
    if outcome.timed_out and (code < 0 or code > 128):
        return JailStatus(exit_code=None, signal=int(signal.SIGKILL), time_limit=True, problems=())
    if code < 0:  # bwrap itself was signalled
        return JailStatus(exit_code=None, signal=-code, time_limit=False, problems=())
    if code > 128:
        return JailStatus(exit_code=None, signal=code - 128, time_limit=False, problems=())
    return JailStatus(exit_code=code, signal=None, time_limit=False, problems=())


def pytest_configure(config: Any) -> None:
    original = jail_module.build_argv
    run_process = jail_module.run_process
    pending: dict[tuple[str, ...], tuple[Any, list[Path], int]] = {}  # argv: shim, cgroups, fd

    def build_argv(**kwargs: Any) -> list[str]:
        argv = original(**kwargs)
        if kwargs.get("kernel") is not None:
            return argv  # a warm kernel's jail stays nsjail's
        fd = bpf_fd()
        jail = bench_jails.bwrap_from_nsjail(argv, bpf_fd=fd)
        made = own_cgroups(kwargs)
        joined = ([] if not kwargs.get("memory_parent") else [memory_of(kwargs)]) + made
        pending[tuple(jail.argv)] = (bench_jails.shim(joined, jail), made, fd)
        return jail.argv

    async def run_bwrap(argv: Sequence[str], **kwargs: Any) -> process.ProcessOutcome:
        if not (argv and argv[0] == "bwrap"):
            return await run_process(argv, **kwargs)
        shim, made, fd = pending.pop(tuple(argv))
        try:
            return await run_process(argv, **kwargs, preexec_fn=shim)
        finally:
            os.close(fd)
            bench_jails.BwrapCgroups.remove(made)

    jail_module.build_argv = build_argv
    jail_module.run_process = run_bwrap
    jail_module._status = status
    process._spawn = spawn


def memory_of(kwargs: dict[str, Any]) -> Path:
    """The run's pooled memory cgroup (its cap and OOM count are the sandbox's own)."""
    return Path(kwargs["cgroups"].memory_mount) / kwargs["memory_parent"]


def own_cgroups(kwargs: dict[str, Any]) -> list[Path]:
    """A pids cgroup for the run (nsjail makes one per jail), and a memory one when the
    sandbox has no pooled one (cgroup v1 only)."""
    cgroups, limits = kwargs["cgroups"], kwargs["limits"]
    if cgroups.kind != "v1":
        return []
    name = f"BWRAP.{os.urandom(6).hex()}"
    pids = Path(cgroups.pids_mount) / cgroups.parent / name
    pids.mkdir()
    (pids / "pids.max").write_text(str(limits.tasks))
    made = [pids]
    if not kwargs.get("memory_parent"):
        memory = Path(cgroups.memory_mount) / cgroups.parent / name
        memory.mkdir()
        (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
        made.append(memory)
    return made
