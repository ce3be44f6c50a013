"""Host-side walks of jail-written trees: never follow a link, never recurse, always bounded.

These run on the real filesystem (a tree is what they walk); no jail is needed, so the
hostile trees are built here exactly as a block would build them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import tree


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside the walked tree that a hostile tree links to."""
    path = tmp_path / "victim"
    path.mkdir()
    (path / "precious.txt").write_text("keep me")
    return path


def deep_chain(root: Path, depth: int) -> None:
    """``a/a/a/…`` ``depth`` levels below ``root``, deeper than PATH_MAX, built fd-relative."""
    current = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("a", dir_fd=current)
        child = os.open("a", os.O_RDONLY, dir_fd=current)
        os.close(current)
        current = child
    fd = os.open("bottom.bin", os.O_WRONLY | os.O_CREAT, dir_fd=current)
    os.write(fd, b"x" * 65536)
    os.close(fd)
    os.close(current)


def fd_of(path: Path) -> Iterator[int]:
    fd = tree.open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_tree_deeper_than_the_recursion_limit_is_counted_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    deep_chain(root, 3000)  # shutil.rmtree raises RecursionError at about 1,000
    before = open_fds()
    for fd in fd_of(root):
        found = tree.usage(fd, budget=tree.Budget())
    assert found.complete and found.files == 3001 and found.bytes >= 65536
    assert tree.remove_path(root, budget=tree.Budget())
    assert not root.exists()
    assert open_fds() == before  # no fd leaked, however deep the walk went


def test_a_walk_holds_a_bounded_number_of_fds_however_deep_it_goes(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    deep_chain(root, 2 * tree.FDS_HELD + 50)
    peak = 0

    def watch(_fd: int, _name: str, _info: os.stat_result) -> bool:
        nonlocal peak
        peak = max(peak, open_fds())
        return True

    for fd in fd_of(root):
        assert tree.walk(fd, budget=tree.Budget(), on_entry=watch)
    assert peak <= open_fds() + tree.FDS_HELD + 4


def test_symlinks_in_the_tree_are_never_followed(tmp_path: Path, victim: Path) -> None:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "to-dir").symlink_to(victim)
    (root / "sub" / "to-file").symlink_to(victim / "precious.txt")
    (root / "sub" / "dangling").symlink_to("/nonexistent")
    assert tree.remove_path(root, budget=tree.Budget())
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not root.exists()


def test_a_walked_root_that_is_a_symlink_is_refused(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "ws"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        tree.open_dir(link)
    assert tree.remove_path(link, budget=tree.Budget())  # the link goes, never its target
    assert (victim / "precious.txt").exists() and not link.is_symlink()


def test_a_directory_swapped_for_a_symlink_mid_walk_is_not_entered(
    tmp_path: Path, victim: Path
) -> None:
    root = tmp_path / "ws"
    (root / "d").mkdir(parents=True)
    (root / "d" / "inner.txt").write_text("x")
    seen: list[str] = []

    def swap_then_see(fd: int, name: str, info: os.stat_result) -> bool:
        seen.append(name)
        if name == "d":  # a concurrent writer replaces the listed directory with a link
            os.rename("d", "d-moved", src_dir_fd=fd, dst_dir_fd=fd)
            os.symlink(str(victim), "d", dir_fd=fd)
        return True

    for fd in fd_of(root):
        complete = tree.walk(fd, budget=tree.Budget(), on_entry=swap_then_see)
    assert not complete
    assert "precious.txt" not in seen and "inner.txt" not in seen


def test_a_directory_moved_elsewhere_mid_walk_stops_the_climb_back_up(tmp_path: Path) -> None:
    # Deeper than FDS_HELD, so the shallow frames have let go of their fds and are re-entered
    # through "..": a directory moved to another parent meanwhile must not be taken for its
    # old parent.
    root = tmp_path / "ws"
    root.mkdir()
    (root / "elsewhere").mkdir()
    deep_chain(root, tree.FDS_HELD + 20)
    left: list[str] = []

    def move_mid_chain(_fd: int, name: str, _info: os.stat_result) -> bool:
        if name == "bottom.bin":
            os.rename(root / "a" / "a" / "a", root / "elsewhere" / "a")
        return True

    for fd in fd_of(root):
        complete = tree.walk(
            fd,
            budget=tree.Budget(),
            on_entry=move_mid_chain,
            on_leave=lambda _fd, name: left.append(name),
        )
    assert not complete
    # It climbed up to the moved directory and stopped there: never into "elsewhere"'s
    # contents as if they were the old parent's.
    assert len(left) == tree.FDS_HELD + 20 - 3 and set(left) == {"a"}


def test_an_exhausted_budget_stops_the_walk_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    for i in range(300):
        (root / f"f{i}").touch()
    for fd in fd_of(root):
        found = tree.usage(fd, budget=tree.Budget(entries=100))
        slow = tree.usage(fd, budget=tree.Budget(seconds=0))
    assert not found.complete and found.files <= 100
    assert not slow.complete


def test_removal_gets_through_directories_the_block_made_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    locked = root / "locked" / "inner"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    (root / "locked").chmod(0)
    assert tree.remove_path(root, budget=tree.Budget())
    assert not root.exists()


def test_setuid_bits_and_device_nodes_are_stripped(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    planted = root / "sub" / "python"
    planted.write_bytes(b"\x7fELF")
    planted.chmod(0o6755)
    (root / "sub").chmod(0o2755)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "link").symlink_to("/usr/bin/passwd")  # a link to a setuid binary is left alone
    for fd in fd_of(root):
        changed, complete = tree.strip_special(fd, budget=tree.Budget())
    assert complete and changed == 3
    assert stat.S_IMODE(planted.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "sub").stat().st_mode) == 0o755
    assert not (root / "null").exists()
    assert Path("/usr/bin/passwd").stat().st_mode & stat.S_ISUID  # never followed


def test_hard_links_count_their_data_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "big").write_bytes(b"x" * 1_000_000)
    for i in range(20):
        os.link(root / "big", root / f"link{i}")
    for fd in fd_of(root):
        found = tree.usage(fd, budget=tree.Budget())
    assert found.files == 21 and found.bytes < 2_000_000


names = st.text(alphabet="abcdefgh.-_", min_size=1, max_size=6).filter(
    lambda n: n not in {".", ".."}
)
shapes = st.recursive(
    st.sampled_from(["file", "link-out", "link-in", "fifo"]),
    lambda children: st.dictionaries(names, children, max_size=4),
    max_leaves=25,
)


def build(path: Path, shape: object, victim: Path) -> None:
    if isinstance(shape, dict):
        path.mkdir()
        for name, child in shape.items():
            build(path / name, child, victim)
    elif shape == "file":
        path.write_bytes(b"y" * 5000)
    elif shape == "link-out":
        path.symlink_to(victim)
    elif shape == "link-in":
        path.symlink_to(".")
    else:
        os.mkfifo(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shape=st.dictionaries(names, shapes, max_size=5))
def test_any_tree_is_counted_like_a_reference_walk_and_removed_without_touching_outside(
    tmp_path: Path, victim: Path, shape: dict[str, object]
) -> None:
    root = tmp_path / "hyp"
    if root.exists():
        assert tree.remove_path(root, budget=tree.Budget())
    build(root, shape, victim)
    expected = sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))
    for fd in fd_of(root):
        found = tree.usage(fd, budget=tree.Budget())
    assert found.complete and found.files == expected
    assert tree.remove_path(root, budget=tree.Budget())
    assert not root.exists() and (victim / "precious.txt").read_text() == "keep me"
