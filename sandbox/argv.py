"""The nsjail command line for one run, built by a pure function (unit-tested, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.cgroups import CHILD_SLACK, CgroupSetup
from sandbox.layout import JAIL_UID, Interpreter, JailLayout
from sandbox.limits import MIB, Limits
from sandbox.mounts import jail_path
from sandbox.relay import JAIL_SOCKET

CODE_PATH = "/opsloop/code"  # where the block's file appears inside the jail (read-only)
TOOLS_MODULE = "/opsloop/tools.py"  # the jail's `tools` module, in runs with tools
TOOLS_BIN = "/opsloop/bin"  # holds `tool`; first on PATH in runs with tools
TOOLS_PYCACHE = "/opsloop/__pycache__"  # the module's bytecode (sandbox.toolclient)
# Python flags without arguments, which may be written together (-IS).
_PLAIN_FLAGS = frozenset("bBdEhiIOPqRsSuvVx")
WORKSPACE = "/workspace"
HOSTNAME = "opsloop"
# Syscalls a block never needs and an escape often does. ERRNO(1) (EPERM) rather than KILL so a
# probing block gets a clean error it can print. Namespace-creating clone flags are refused;
# clone3 takes its flags in memory that seccomp cannot read, so it answers ENOSYS and libc
# falls back to clone (which is checked). kafel calls x86-64's umount2 "umount".
# inotify and fanotify instances are charged to the host user that owns the jail's user
# namespace (root's 128 instances, shared by every jail), so they are refused too. Sockets:
# only AF_UNIX (1), AF_INET (2) and AF_INET6 (10); the rest answer EAFNOSUPPORT (97): vsock
# can reach a VM's host around the network namespace, netlink, packet, alg and the others
# are kernel surface a block never needs (the namespace has no network anyway).
SECCOMP_POLICY = (
    "ERRNO(1) { ptrace, process_vm_readv, process_vm_writev, mount, umount, pivot_root, "
    "chroot, unshare, setns, kexec_load, kexec_file_load, bpf, keyctl, add_key, request_key, "
    "perf_event_open, init_module, finit_module, delete_module, swapon, swapoff, reboot, "
    "open_by_handle_at, userfaultfd, io_uring_setup, fsopen, fsmount, move_mount, open_tree, "
    "inotify_init, inotify_init1, fanotify_init, "
    "clone { (clone_flags & 0x7e020000) != 0 } } "
    "ERRNO(97) { socket(family, type, protocol) { family != 1 && family != 2 && family != 10 }, "
    "socketpair(family, type, protocol, sv) { family != 1 } } "
    "ERRNO(38) { clone3 } "
    "DEFAULT ALLOW"
)


@dataclass(frozen=True)
class ToolChannel:
    """Host paths of a run's tool channel and its client, all in the run's scratch dir."""

    socket: str  # mounted at /opsloop/tools.sock
    module: str  # tools.py, mounted at /opsloop/tools.py
    bin_dir: str  # holds `tool`, mounted at /opsloop/bin
    pycache: str | None = None  # the module's bytecode, mounted at /opsloop/__pycache__


def python_args_with_tools(args: Sequence[str]) -> tuple[str, ...]:
    """Python's flags for a block that may ``import tools``: ``-I`` becomes ``-E -s`` and
    ``-P`` goes, so the script's directory (``/opsloop``: read-only, only opsloop's files)
    is ``sys.path[0]``. Flags written together (``-IS``) are taken apart first."""
    flags: list[str] = []
    for arg in args:
        if len(arg) > 2 and arg[0] == "-" and set(arg[1:]) <= _PLAIN_FLAGS:
            flags += [f"-{letter}" for letter in arg[1:]]
        else:
            flags.append(arg)
    changed: list[str] = []
    for flag in flags:
        if flag == "-I":
            changed += ["-E", "-s"]
        elif flag != "-P":
            changed.append(flag)
    return tuple(changed)


def jail_env(env: Sequence[tuple[str, str]], *, tools: bool) -> list[tuple[str, str]]:
    """The jail's environment; with tools, ``/opsloop/bin`` comes first on ``PATH``."""
    if not tools:
        return list(env)
    return [(k, f"{TOOLS_BIN}:{v}" if k == "PATH" else v) for k, v in env]


# A kernel's jail runs this instead of the code file: it reads the kernel's source and its
# nonce from the control pipe (``sandbox.kernel``), so neither is in argv, the environment
# or a file of the jail, and the jail's files are a one-shot block's.
KERNEL_BOOTSTRAP = (
    "import os\nb=b''\nwhile b[-1:]!=b'\\n' or b'\\0' not in b:\n r=os.read({read},65536)\n"
    " if not r:os._exit(70)\n b+=r\ns,_,n=b.partition(b'\\0')\n"
    "exec(s,{{'__name__':'__opsloop_kernel__','NONCE':n[:-1],'READ_FD':{read},'WRITE_FD':{write}}})"
)


@dataclass(frozen=True)
class KernelJail:
    """What makes a jail a kernel's: its control pipes (fds kept open in the jail), how long
    it may live, and whether its workspace is attached after start (a prestarted jail)."""

    read_fd: int  # the kernel reads the host's lines here
    write_fd: int  # and writes its own here
    max_seconds: float  # nsjail's own backstop; the host retires kernels before it
    attach_later: bool = False  # /workspace is an empty placeholder until the host mounts it


@dataclass(frozen=True)
class ScratchSpace:
    """A private tmpfs ``/workspace`` for a run without a workspace: nothing on the host."""

    bytes: int
    files: int


def build_argv(
    *,
    nsjail: str,
    limits: Limits,
    layout: JailLayout,
    language: str,
    code_file: str,
    workspace_dir: str | None,
    log_file: str,
    cgroups: CgroupSetup,
    owner: tuple[int, int] = (JAIL_UID, JAIL_UID),
    memory_parent: str | None = None,
    scratch: ScratchSpace = ScratchSpace(bytes=256 * MIB, files=10_000),
    tools: ToolChannel | None = None,
    mounts: Sequence[tuple[str, str]] = (),
    ro_submounts: Sequence[str] = (),
    kernel: KernelJail | None = None,
) -> list[str]:
    """nsjail's argv running ``code_file`` (a host path) as ``language`` under ``limits``:
    ``workspace_dir`` at /workspace (else ``scratch``), ``tools`` under /opsloop, ``mounts``
    ((name, host path) pairs) read-only at /mnt/NAME, ``ro_submounts`` (the host's mounts
    below the read-only binds) read-only again; ``kernel`` runs a warm kernel instead."""
    interpreter = _interpreter(layout.interpreter(language), tools=tools is not None)
    command = [interpreter.path, *interpreter.args, CODE_PATH]
    process = _process_options(limits=limits, owner=owner, cgroups=cgroups)
    if kernel is not None:
        command, process = _kernel_command(interpreter, process, kernel)
        if kernel.attach_later:
            workspace_dir, scratch = None, ScratchSpace(bytes=4096, files=2)
    return [
        nsjail,
        "--mode",
        "o",
        "--log",
        log_file,
        *process,
        *_filesystem_options(
            layout=layout,
            limits=limits,
            code_file=code_file,
            workspace_dir=workspace_dir,
            scratch=scratch,
            ro_submounts=ro_submounts,
        ),
        *_extra_mounts(tools=tools, mounts=mounts),
        *(
            option
            for key, value in jail_env(layout.env, tools=tools is not None)
            for option in ("--env", f"{key}={value}")
        ),
        *_cgroup_options(
            cgroups=cgroups,
            limits=limits,
            memory=limits.memory_mb * MIB,
            memory_parent=memory_parent,
        ),
        "--",
        *command,
    ]


def _kernel_command(
    interpreter: Interpreter, options: list[str], kernel: KernelJail
) -> tuple[list[str], list[str]]:
    """A kernel's command (the bootstrap) and process options: its pipes passed in, nsjail's
    clock as long as its life, no CPU cap at start (the host sets one per block)."""
    bootstrap = KERNEL_BOOTSTRAP.format(read=kernel.read_fd, write=kernel.write_fd)
    changed = list(options)
    changed[changed.index("--time_limit") + 1] = str(math.ceil(kernel.max_seconds))
    changed[changed.index("--rlimit_cpu") + 1] = "inf"
    changed += ["--pass_fd", str(kernel.read_fd), "--pass_fd", str(kernel.write_fd)]
    return [interpreter.path, *interpreter.args, "-c", bootstrap], changed


def _interpreter(interpreter: Interpreter, *, tools: bool) -> Interpreter:
    if not tools or interpreter.language != "python":
        return interpreter
    return Interpreter(
        language=interpreter.language,
        path=interpreter.path,
        args=python_args_with_tools(interpreter.args),
    )


def _extra_mounts(*, tools: ToolChannel | None, mounts: Sequence[tuple[str, str]]) -> list[str]:
    """The operator's named mounts (read-only), and the tool channel with its client."""
    argv: list[str] = []
    for name, host_path in mounts:
        argv += ["--bindmount_ro", f"{host_path}:{jail_path(name)}"]
    if tools is not None:
        argv += ["--bindmount_ro", f"{tools.module}:{TOOLS_MODULE}"]
        if tools.pycache is not None:
            argv += ["--bindmount_ro", f"{tools.pycache}:{TOOLS_PYCACHE}"]
        argv += ["--bindmount_ro", f"{tools.bin_dir}:{TOOLS_BIN}"]
        argv += ["--bindmount_ro", f"{tools.socket}:{JAIL_SOCKET}"]
    return argv


def _process_options(*, limits: Limits, owner: tuple[int, int], cgroups: CgroupSetup) -> list[str]:
    """Who the block runs as, where, and its rlimits and seccomp policy."""
    return [
        # inside:outside:count. The outside id is explicit: never the caller's uid when root.
        "--user",
        f"{JAIL_UID}:{owner[0]}:1",
        "--group",
        f"{JAIL_UID}:{owner[1]}:1",
        "--hostname",
        HOSTNAME,
        "--cwd",
        WORKSPACE,
        # nsjail's own clock is a backstop: the caller kills the jail at the exact wall limit.
        "--time_limit",
        str(math.ceil(limits.wall_seconds) + 1),
        "--rlimit_cpu",
        str(math.ceil(limits.cpu_limit)),
        "--rlimit_fsize",
        str(limits.file_size_mb),
        "--rlimit_nofile",
        str(limits.open_files),
        "--rlimit_nproc",
        str(limits.tasks),
        "--rlimit_core",
        "0",
        # With a memory cgroup, address space is left alone: thread stacks and mmaps are
        # virtual, and the cgroup caps what is really used. Without one, RLIMIT_AS is all.
        "--rlimit_as",
        "inf" if cgroups.kind != "none" else str(limits.memory_mb),
        "--seccomp_string",
        SECCOMP_POLICY,
    ]


def _filesystem_options(
    *,
    layout: JailLayout,
    limits: Limits,
    code_file: str,
    workspace_dir: str | None,
    scratch: ScratchSpace,
    ro_submounts: Sequence[str] = (),
    kernel: KernelJail | None = None,
) -> list[str]:
    """The jail's mounts: the system read-only, /tmp, /workspace and the code file."""
    argv: list[str] = []
    for target, link in layout.symlinks:
        argv += ["--symlink", f"{target}:{link}"]
    for path in (*layout.ro_binds, *ro_submounts):  # nsjail makes only each top read-only
        argv += ["--bindmount_ro", path]
    for device in layout.devices:
        argv += ["--bindmount", device]  # rw so writing to /dev/null works; a device, not a dir
    argv += ["--mount", f"none:/tmp:tmpfs:size={limits.tmpfs_mb * MIB},mode=1777"]
    if workspace_dir is None:
        argv += [
            "--mount",
            f"none:{WORKSPACE}:tmpfs:size={scratch.bytes},nr_inodes={scratch.files},"
            f"mode=0700,uid={JAIL_UID},gid={JAIL_UID}",
        ]
    else:
        argv += ["--bindmount", f"{workspace_dir}:{WORKSPACE}"]
    return [*argv, "--bindmount_ro", f"{code_file}:{CODE_PATH}"]


def _cgroup_options(
    *, cgroups: CgroupSetup, limits: Limits, memory: int, memory_parent: str | None
) -> list[str]:
    if cgroups.kind == "v2":
        return [
            "--use_cgroupv2",
            "--cgroupv2_mount",
            str(cgroups.memory_mount),
            "--cgroup_mem_max",
            str(memory),
            "--cgroup_mem_swap_max",
            "0",
            "--cgroup_pids_max",
            str(limits.tasks),
        ]
    if cgroups.kind == "v1":
        return [
            # Our run cgroup (memory_parent) holds the real cap; nsjail's child a little more.
            "--cgroup_mem_max",
            str(memory + CHILD_SLACK if memory_parent else memory),
            "--cgroup_mem_mount",
            str(cgroups.memory_mount),
            "--cgroup_mem_parent",
            memory_parent or cgroups.parent,
            "--cgroup_pids_max",
            str(limits.tasks),
            "--cgroup_pids_mount",
            str(cgroups.pids_mount),
            "--cgroup_pids_parent",
            cgroups.parent,
        ]
    return []
