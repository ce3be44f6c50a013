"""What the jail contains: read-only mounts, symlinks, interpreters and environment.

``discover_layout`` looks at the host once (where the interpreters are, which of ``/bin``,
``/lib`` … are symlinks on a merged-/usr system); the result is a plain value that the pure
argv builder turns into nsjail options.

nsjail performs the mounts as the jail user (uid 65534 on the host), so every mounted host
path must be reachable by "others" (``o+x`` on each parent directory): an interpreter under
``/root`` (pyenv's default) cannot be mounted, which is why bare names are looked up in the
system directories first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import SandboxUnavailable
from sandbox.mounts import refuse_mounts_below, valid_name

JAIL_UID = 65534
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Looked for on the host; each is a read-only bind, or a symlink when it is one on the host.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
# The dynamic loader's cache (not the rest of /etc: no passwd, no shadow, no host config).
SYSTEM_FILES = ("/etc/ld.so.cache",)
# Debian's alternatives: only symlinks into /usr, but without them /usr/bin/awk, editor,
# pager … are dangling links, and ops scripts use awk everywhere.
SYSTEM_ETC_DIRS = ("/etc/alternatives",)
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
JAIL_OWN_DIRS = ("/tmp", "/workspace", "/opsloop", "/mnt", "/dev", "/proc")  # never the host's
DEFAULT_PYTHON_ARGS = ("-I", "-S")


def jail_owner() -> tuple[int, int]:
    """The host uid/gid the jail user maps to: nobody when we are root, else ourselves.

    Never root: nsjail's plain ``-u 65534`` would map to the caller's uid, which for a root
    opsloop makes the block root on the host.
    """
    if os.geteuid() == 0:
        return JAIL_UID, JAIL_UID
    return os.getuid(), os.getgid()


@dataclass(frozen=True)
class Interpreter:
    """How to run one language: the executable (same path inside and out) and its flags."""

    language: str
    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class JailLayout:
    """Everything the jail sees besides the per-run code file and workspace."""

    ro_binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]  # (target, link path)
    devices: tuple[str, ...]
    interpreters: tuple[Interpreter, ...]
    env: tuple[tuple[str, str], ...]
    nice: int = 0  # of the jailed process; blocks are interactive, their caps bound the rest
    mounts: tuple[tuple[str, str], ...] = ()  # (name, resolved host path): read-only at /mnt/NAME

    def interpreter(self, language: str) -> Interpreter:
        """The interpreter for ``language`` (the request was validated before)."""
        for interpreter in self.interpreters:
            if interpreter.language == language:
                return interpreter
        raise SandboxUnavailable(f"no interpreter is configured for {language}")


@dataclass(frozen=True)
class LayoutOptions:
    """The operator's choices (from opsloop.toml's [sandbox] section)."""

    python: str = "python3"
    bash: str = "bash"
    python_args: tuple[str, ...] = DEFAULT_PYTHON_ARGS
    extra_mounts: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    nice: int = 0
    mounts: Mapping[str, str] = field(default_factory=dict)  # name -> host path ([sandbox] mounts)


def unreachable_part(path: str | os.PathLike[str]) -> str | None:
    """The first parent directory of ``path`` that the jail user cannot traverse, if any.

    A directory that does not exist yet is no obstacle: opsloop creates the rest of the path
    itself, traversable (``Workspaces`` makes its root 0711).
    """
    current = Path(path)
    for parent in reversed(current.parents):
        try:
            info = parent.stat()
        except FileNotFoundError:
            return None
        except OSError:
            return str(parent)
        if info.st_uid == jail_owner()[0]:
            continue
        if not info.st_mode & stat.S_IXOTH:
            return str(parent)
    return None


def resolve_executable(name: str) -> str:
    """An absolute path for ``name``: as given, or looked up in the system directories."""
    if os.path.isabs(name):
        if os.access(name, os.X_OK):
            return name
        raise SandboxUnavailable(f"interpreter {name} is not an executable file")
    for directory in SAFE_PATH.split(":"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxUnavailable(
        f"interpreter {name!r} is not in {SAFE_PATH}: install it there or configure an "
        "absolute path in opsloop.toml [sandbox]"
    )


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _prefix(executable: str) -> str:
    """The directory to mount for an interpreter outside the system dirs (its ``bin``'s parent)."""
    parent = Path(executable).parent
    return str(parent.parent if parent.name == "bin" else parent)


def resolve_mount(name: str, *, path: str) -> str:
    """The host path of the mount ``name``, resolved; ``SandboxUnavailable`` saying what is wrong.

    Absolute, without ``..``, existing, reachable by the jail user, and with nothing mounted
    below it. Symlinks in it are resolved here, on the host, once: the jail gets the real path.
    """
    if not valid_name(name):
        raise SandboxUnavailable(f"mount name {name[:80]!r} is not a simple identifier")
    if not os.path.isabs(path) or ".." in Path(path).parts:
        raise SandboxUnavailable(f"mount {name}: {path!r} must be an absolute path without '..'")
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise SandboxUnavailable(f"mount {name}: {path} does not exist")
    blocked = unreachable_part(real)
    if blocked:
        raise SandboxUnavailable(
            f"mount {name}: the jail user cannot reach {real} because {blocked} is not "
            "searchable by others (chmod o+x it)"
        )
    refuse_mounts_below([(name, real)])
    return real


def discover_layout(options: LayoutOptions) -> JailLayout:
    """Inspect the host once and describe the jail (mounts, interpreters, environment)."""
    ro_binds: list[str] = []
    symlinks: list[tuple[str, str]] = []
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            symlinks.append((os.readlink(directory), directory))
        elif os.path.isdir(directory):
            ro_binds.append(directory)
    ro_binds += [f for f in SYSTEM_FILES if os.path.isfile(f)]
    ro_binds += [d for d in SYSTEM_ETC_DIRS if os.path.isdir(d)]
    for mount in options.extra_mounts:
        if not os.path.isabs(mount) or not os.path.exists(mount):
            raise SandboxUnavailable(f"extra mount {mount!r} must be an existing absolute path")
        shadowed = next((p for p in JAIL_OWN_DIRS if _under(os.path.normpath(mount), [p])), None)
        if shadowed:
            raise SandboxUnavailable(
                f"extra mount {mount!r} is under {shadowed}, which the jail has its own of; "
                "offer a path outside it"
            )
        ro_binds.append(os.path.normpath(mount))

    interpreters = []
    for language, name, args in (
        ("python", options.python, options.python_args),
        ("bash", options.bash, ()),
    ):
        path = resolve_executable(name)
        for needed in (path, os.path.realpath(path)):
            if not _under(needed, ro_binds + [link for _, link in symlinks]):
                ro_binds.append(_prefix(needed))
        interpreters.append(Interpreter(language=language, path=path, args=tuple(args)))

    for mount in ro_binds:
        blocked = unreachable_part(mount)
        if blocked:
            raise SandboxUnavailable(
                f"the jail user (uid {JAIL_UID}) cannot reach {mount} because {blocked} is not "
                "searchable by others: move it (e.g. under /opt) or chmod o+x that directory"
            )
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/workspace"}
    env.update(options.env)
    return JailLayout(
        ro_binds=tuple(dict.fromkeys(ro_binds)),
        symlinks=tuple(symlinks),
        devices=tuple(d for d in DEVICES if os.path.exists(d)),
        interpreters=tuple(interpreters),
        env=tuple(sorted(env.items())),
        nice=options.nice,
        mounts=tuple(
            (name, resolve_mount(name, path=path)) for name, path in options.mounts.items()
        ),
    )
