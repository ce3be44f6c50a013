"""Capped streaming of a block's output, fed by hand (no process, no I/O)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from sandbox.argv import CODE_PATH, build_argv
from sandbox.cgroups import CgroupSetup
from sandbox.layout import Interpreter, JailLayout
from sandbox.limits import Limits
from sandbox.process import _Capped


async def capped(chunks: list[bytes], limit: int) -> _Capped:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    stream = _Capped(reader, limit)
    await stream.drain()
    assert reader.at_eof()  # everything was read, whatever was kept
    return stream


async def test_output_under_the_cap_is_kept_whole() -> None:
    stream = await capped([b"hello ", b"world"], limit=1024)
    assert bytes(stream.kept) == b"hello world" and not stream.truncated


async def test_output_over_the_cap_keeps_the_head_and_is_flagged() -> None:
    stream = await capped([b"a" * 700, b"b" * 700, b"c" * 700], limit=1024)
    assert bytes(stream.kept) == b"a" * 700 + b"b" * 324 and stream.truncated


async def test_output_of_exactly_the_cap_is_not_truncated() -> None:
    stream = await capped([b"x" * 512, b"y" * 512], limit=1024)
    assert len(stream.kept) == 1024 and not stream.truncated


LAYOUT = JailLayout(
    ro_binds=("/usr",),
    symlinks=(),
    devices=(),
    interpreters=(Interpreter(language="python", path="/usr/bin/python3", args=("-I", "-S")),),
    env=(("PATH", "/usr/bin"),),
)


@given(
    wall=st.floats(min_value=0.1, max_value=3600),
    memory=st.integers(min_value=16, max_value=65536),
    tasks=st.integers(min_value=1, max_value=4096),
    kind=st.sampled_from(["v1", "v2", "none"]),
)
def test_whatever_the_limits_the_jail_user_and_program_are_fixed(
    wall: float, memory: int, tasks: int, kind: str
) -> None:
    args = build_argv(
        nsjail="/nsjail",
        limits=Limits(wall_seconds=wall, memory_mb=memory, tasks=tasks),
        layout=LAYOUT,
        language="python",
        code_file="/c",
        workspace_dir="/w",
        log_file="/l",
        cgroups=CgroupSetup(kind=kind, memory_mount="/m", pids_mount="/p"),  # type: ignore[arg-type]
    )
    assert args.count("--") == 1
    assert args[args.index("--") + 1 :] == ["/usr/bin/python3", "-I", "-S", CODE_PATH]
    head = args[: args.index("--")]
    assert head[head.index("--user") + 1] == "65534:65534:1"
    assert not [a for a in head if a.startswith("--disable_clone")]
    assert int(head[head.index("--time_limit") + 1]) >= wall
