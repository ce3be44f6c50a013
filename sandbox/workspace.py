"""Per-conversation workspaces (``/workspace`` in the jail): hard caps, own uids, expiry.

A workspace name is opaque (the loop passes the conversation id) and validated to be one
safe directory name, so it never points outside the workspaces root. Two kinds (``fs``):

- ``image``: a loop-mounted ext4 image per workspace (``sandbox.images``): the kernel
  enforces the byte and file caps on every write, and the mount is ``nosuid,nodev``. The
  default wherever opsloop runs as root.
- ``directory``: a plain directory, for hosts without root: the caps are polled while a
  block runs (``sandbox.quota``) and checked after it; a workspace over a cap is emptied.

Either way each workspace has its own host uid (``sandbox.uids``, when root), is put back
to mode 0700 before and after every run, loses setuid/setgid bits and device nodes after
every run, and its last use is recorded by opsloop under ``.meta/`` (which no jail can
reach): never read from a file time a block can set. Every walk of a workspace goes
through ``sandbox.tree`` (fd-relative, bounded, never following a link).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox import images, quota, spares, tree
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.images import resolve_fs
from sandbox.layout import JAIL_UID, jail_owner, unreachable_part
from sandbox.process import Watch
from sandbox.request import check_workspace
from sandbox.uids import DEFAULT_UID_RANGE, UidRange

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 600.0
UNMOUNT_IDLE_SECONDS = 2 * 3600.0  # longer than any block can run: no jail still holds it
FINISH_SECONDS = 5.0  # the after-run walk of one workspace
META, IMAGES, TRASH = ".meta", ".images", ".trash"  # names a workspace can never have
SPARE = ".spare-"  # in .images: an image made ahead for a prestarted kernel's uid
SPARE_SECONDS = UNMOUNT_IDLE_SECONDS  # older than any kernel can be: its process is gone
DEFAULT_RANGE = UidRange.parse(DEFAULT_UID_RANGE)


@dataclass(frozen=True)
class Workspace:
    """One prepared workspace: where it is on the host and which uid owns it."""

    name: str
    path: Path
    owner: tuple[int, int]


@dataclass(frozen=True)
class _Record:
    uid: int
    gid: int
    fs: str
    used: float  # last use, as opsloop recorded it


class Workspaces:
    """The directory of all workspaces, with their caps, uids and idle expiry."""

    def __init__(
        self,
        *,
        root: Path,
        quota_bytes: int,
        idle_seconds: float,
        max_files: int = 10_000,
        uid_range: UidRange | None = DEFAULT_RANGE,
        fs: str = "auto",
    ) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self.idle_seconds = idle_seconds
        self.max_files = max_files
        self.uid_range = uid_range if os.geteuid() == 0 else None  # only root can chown
        self.fs = resolve_fs(fs)
        self._last_prune = 0.0

    # -- where things are ------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """The host directory of workspace ``name`` (its image's mount point)."""
        return self.root / check_workspace(name)

    def _image(self, name: str) -> Path:
        return self.root / IMAGES / f"{name}.ext4"

    def _record_path(self, name: str) -> Path:
        return self.root / META / f"{name}.json"

    def owner(self, name: str) -> tuple[int, int] | None:
        """The host uid and gid of workspace ``name``, once it exists."""
        record = self._record(check_workspace(name))
        return (record.uid, record.gid) if record else None

    def last_used(self, name: str) -> float | None:
        """When a block last used workspace ``name``, by opsloop's own record."""
        record = self._record(check_workspace(name))
        return record.used if record else None

    def scratch_owner(self) -> tuple[int, int]:
        """The host uid and gid of runs without a workspace."""
        if self.uid_range is None:
            return jail_owner()
        return self.uid_range.scratch, self.uid_range.scratch

    # -- records, kept where no jail can reach ----------------------------------------------

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o711)  # traversable by jail users, not listable
        for private in (META, IMAGES, TRASH):
            with contextlib.suppress(FileExistsError):
                (self.root / private).mkdir(mode=0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process (and thread) at a time creates, mounts or removes workspaces."""
        fd = os.open(self.root / META / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _record(self, name: str) -> _Record | None:
        path = self._record_path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _Record(
                int(data["uid"]), int(data["gid"]), str(data["fs"]), path.stat().st_mtime
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_record(self, name: str, *, owner: tuple[int, int]) -> None:
        path = self._record_path(name)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"uid": owner[0], "gid": owner[1], "fs": self.fs}))
        temporary.replace(path)

    def _touch(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._record_path(name))

    def _records(self) -> list[tuple[str, _Record]]:
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / META) as entries:
            for entry in entries:
                name = entry.name.removesuffix(".json")
                if entry.name.endswith(".json") and (record := self._record(name)):
                    found.append((name, record))
        return found

    # -- before and after a run ------------------------------------------------------------

    def prepare(self, name: str, *, uid: int | None = None, spare: Path | None = None) -> Workspace:
        """Workspace ``name``, created, mounted and closed to others (blocking I/O). A new one
        gets ``uid`` when free, and the image ``spare`` made for it ahead (``make_spare``)."""
        path = self.path(name)
        self._ensure_root()
        blocked = unreachable_part(path)
        if blocked:
            raise SandboxUnavailable(
                f"workspaces in {self.root} are not reachable by the jail user (uid {JAIL_UID}) "
                f"because {blocked} is not searchable by others: set OPSLOOP_DATA_DIR to a "
                "directory such as /var/lib/opsloop, or chmod o+x that directory"
            )
        with self._locked():
            record = self._record(name)
            if record is not None and record.fs != self.fs:
                self._discard(name)
                record = None
            if record is None:
                owner = self._create(name, uid=uid, spare=spare)
            else:
                owner = (record.uid, record.gid)
                if not path.is_dir() and not path.is_symlink():
                    path.mkdir(mode=0o700)  # deleted by hand: start afresh
                if self.fs == "image" and not self._image(name).exists():
                    self._make_image(name, owner)
            if self.fs == "image" and not images.is_mounted(path):
                images.mount(self._image(name), path)
            tree.close_to_others(path, owner)
            self._touch(name)
        return Workspace(name=name, path=path, owner=owner)

    def _create(
        self, name: str, *, uid: int | None = None, spare: Path | None = None
    ) -> tuple[int, int]:
        path = self.path(name)
        if path.is_symlink() or path.exists():  # a workspace from before records: set aside
            self._set_aside(name)
        if self.uid_range is None:
            owner = jail_owner()
        else:
            taken = {record.uid for _, record in self._records()}
            if uid is None or uid in taken or not self.uid_range.first < uid <= self.uid_range.last:
                uid = self.uid_range.allocate(name, taken=taken)
            owner = (uid, uid)
        path.mkdir(mode=0o700)
        if self.fs == "image" and spare is not None and owner[0] == uid and spare.is_file():
            # Made and mounted for this uid: no mkfs nor mount while the user waits.
            spares.take(spare, to_image=self._image(name), to_dir=path)
        elif self.fs == "image":
            self._make_image(name, owner)
        self._write_record(name, owner=owner)
        return owner

    def _make_image(self, name: str, owner: tuple[int, int]) -> None:
        self._image(name).unlink(missing_ok=True)
        images.create(
            self._image(name), quota_bytes=self.quota_bytes, files=self.max_files, owner=owner
        )

    def spare_uid(self, *, besides: set[int]) -> int | None:
        """A uid no workspace holds (nor ``besides``), for a jail started before its
        workspace exists; None when uids are not ours to give (not root)."""
        if self.uid_range is None:
            return None
        self._ensure_root()
        taken = {record.uid for _, record in self._records()} | besides
        return self.uid_range.allocate(os.urandom(8).hex(), taken=taken)

    def make_spare(self, uid: int) -> Path | None:
        """An image for a future workspace of ``uid`` (images only), made ahead of time."""
        if self.fs != "image":
            return None
        self._ensure_root()
        spare = self.root / IMAGES / f"{SPARE}{spares.maker()}-{os.urandom(8).hex()}.ext4"
        spares.make(spare, quota_bytes=self.quota_bytes, files=self.max_files, owner=(uid, uid))
        return spare

    def exists(self, name: str) -> bool:
        """Has workspace ``name`` a record (so its uid is fixed)?"""
        return self._record(check_workspace(name)) is not None

    def note_kernel(self, name: str) -> None:
        """Remember that a kernel ran for ``name`` (a later new one is a restart)."""
        with contextlib.suppress(OSError):
            (self.root / META / f"{name}.kernel").touch()

    def had_kernel(self, name: str) -> bool:
        """Did a kernel run for ``name`` before, in any process (by our record)?"""
        return (self.root / META / f"{check_workspace(name)}.kernel").exists()

    def identity(self, workspace: Workspace) -> tuple[int, int, int] | None:
        """Two stats, cheap enough for every warm block: the workspace root's device and
        inode (not following a link; another mount changes the device) and its record's
        inode (made again when the workspace is). None when either is gone."""
        try:
            root = os.stat(workspace.path, follow_symlinks=False)
            record = os.stat(self._record_path(workspace.name))
        except OSError:
            return None
        return root.st_dev, root.st_ino, record.st_ino

    def finish(self, workspace: Workspace, *, quick: int | None = None) -> str | None:
        """After a run: close it to others again, strip what no block may leave, and (for a
        directory) empty it when it is over a cap. Returns a notice for the block's stderr.
        ``quick``: at most that many entries (on the event loop); ``tree.TooLong`` when the
        image holds more, or for a directory (then finish it off the loop: nothing is lost)."""
        if quick is not None and self.fs == "directory":
            raise tree.TooLong
        try:
            fd = tree.open_dir(workspace.path)
        except OSError:
            return None
        try:
            os.fchmod(fd, 0o700)
            entries = 4 * self.max_files + 1000 if quick is None else quick
            budget = tree.Budget(seconds=FINISH_SECONDS, entries=entries)
            changed, complete = tree.strip_special(fd, budget=budget)
            if quick is not None and not complete:
                raise tree.TooLong
            if changed or not complete:
                log.warning(
                    "workspace %s: %d setuid/setgid bits or device nodes removed%s",
                    workspace.name,
                    changed,
                    "" if complete else " (walk incomplete)",
                )
            notice = self._enforce(fd) if self.fs == "directory" else None
        finally:
            os.close(fd)
        self._touch(workspace.name)
        return notice

    def _enforce(self, fd: int) -> str | None:
        over = quota.check(fd, quota_bytes=self.quota_bytes, max_files=self.max_files)
        if over is None:
            return None
        tree.empty(fd, budget=tree.Budget(seconds=FINISH_SECONDS * 6))
        return f"\nopsloop: the workspace {over}, and was emptied\n"

    def watcher(self, workspace: Workspace) -> Watch | None:
        """A check of a running block against the caps (directories only: an image needs
        none, its filesystem refuses the write)."""
        if self.fs != "directory":
            return None
        return quota.watcher(workspace.path, quota_bytes=self.quota_bytes, max_files=self.max_files)

    # -- expiry ----------------------------------------------------------------------------

    def prune_due(self) -> bool:
        """True at most every few minutes: then the caller prunes (off the event loop)."""
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return False
        self._last_prune = now
        return True

    def prune(self, *, now: float | None = None) -> list[str]:
        """Remove workspaces idle for longer than ``idle_seconds``, and unmount images idle
        for a while; returns the removed names. A workspace that resists is logged and
        skipped: it never stops the others."""
        now = time.time() if now is None else now
        removed = []
        for name, record in self._records():
            idle = now - record.used
            try:
                if idle > self.idle_seconds:
                    if self.remove(name):
                        removed.append(name)
                elif record.fs == "image" and idle > UNMOUNT_IDLE_SECONDS:
                    self._unmount_idle(name)
            except (OSError, SandboxError) as exc:
                log.warning("workspace %s could not be pruned: %s; skipped", name, exc)
        self._empty_trash()
        # Spares of a process that stopped (by their maker, or by age: a live one's are younger).
        spares.sweep(self.root / IMAGES, prefix=SPARE, older_than=now - SPARE_SECONDS)
        return sorted(removed)

    def remove(self, name: str) -> bool:
        """Delete workspace ``name`` (its image, its files, its record); True when gone."""
        with self._locked():
            return self._discard(name)

    def _discard(self, name: str) -> bool:
        path = self.path(name)
        if images.is_mounted(path):
            problem = images.unmount(path)
            if problem:
                log.warning("workspace %s stays: cannot unmount it (%s)", name, problem)
                return False
        self._image(name).unlink(missing_ok=True)
        gone = tree.remove_path(path, budget=tree.Budget(seconds=FINISH_SECONDS * 6))
        if gone:
            self._record_path(name).unlink(missing_ok=True)
            (self.root / META / f"{name}.kernel").unlink(missing_ok=True)
        else:
            log.warning("workspace %s could not be removed completely; retried later", name)
        return gone

    def _unmount_idle(self, name: str) -> None:
        with self._locked():
            record = self._record(name)
            path = self.path(name)
            idle = record is not None and time.time() - record.used > UNMOUNT_IDLE_SECONDS
            if idle and images.is_mounted(path) and (problem := images.unmount(path)):
                log.warning("workspace %s stays mounted: %s", name, problem)

    def _set_aside(self, name: str) -> None:
        """Move a workspace without a record out of the way; pruning deletes it."""
        target = self.root / TRASH / f"{name}-{os.urandom(4).hex()}"
        log.warning("workspace %s predates opsloop's records: set aside and deleted", name)
        os.rename(self.path(name), target)

    def _empty_trash(self) -> None:
        try:
            with os.scandir(self.root / TRASH) as entries:
                names = [entry.name for entry in entries]
        except FileNotFoundError:
            return
        for name in names:
            if not tree.remove_path(self.root / TRASH / name, budget=tree.Budget(seconds=30)):
                log.warning("could not delete %s from the trash; retried later", name)

    def detach_all(self) -> None:
        """Unmount every workspace image (tests, the demo, a scratch probe)."""
        for name, _ in self._records():
            path = self.path(name)
            if images.is_mounted(path) and (problem := images.unmount(path)):
                log.warning("workspace %s stays mounted: %s", name, problem)
