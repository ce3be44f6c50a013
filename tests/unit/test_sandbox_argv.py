"""The pure nsjail argv builder: every isolation promise is visible in the command line."""

from __future__ import annotations

import pytest

from sandbox.argv import CODE_PATH, SECCOMP_POLICY, WORKSPACE, build_argv
from sandbox.cgroups import CHILD_SLACK, CgroupSetup
from sandbox.layout import Interpreter, JailLayout
from sandbox.limits import MIB, Limits

LAYOUT = JailLayout(
    ro_binds=("/usr", "/etc/ld.so.cache", "/opt/venv"),
    symlinks=(("usr/bin", "/bin"), ("usr/lib", "/lib")),
    devices=("/dev/null", "/dev/urandom"),
    interpreters=(
        Interpreter(language="python", path="/usr/bin/python3", args=("-I", "-S")),
        Interpreter(language="bash", path="/usr/bin/bash"),
    ),
    env=(("HOME", "/workspace"), ("LANG", "C.UTF-8"), ("PATH", "/usr/bin:/bin")),
)
V1 = CgroupSetup(kind="v1", memory_mount="/cg/memory", pids_mount="/cg/pids")
V2 = CgroupSetup(kind="v2", memory_mount="/cg/opsloop", pids_mount="/cg/opsloop")
NONE = CgroupSetup(kind="none", reason="test")


def argv(**overrides: object) -> list[str]:
    options: dict[str, object] = dict(
        nsjail="/x/nsjail",
        limits=Limits(),
        layout=LAYOUT,
        language="python",
        code_file="/run/r1/code.py",
        workspace_dir="/data/workspaces/c1",
        log_file="/run/r1/nsjail.log",
        cgroups=V1,
        memory_parent="opsloop/run-1-ab",
    )
    options.update(overrides)
    return build_argv(**options)  # type: ignore[arg-type]


def option(args: list[str], name: str) -> list[str]:
    """Every value given to ``name`` before the ``--`` separator."""
    head = args[: args.index("--")]
    return [head[i + 1] for i, arg in enumerate(head) if arg == name]


def test_the_jail_user_maps_to_nobody_on_the_host_never_to_the_caller() -> None:
    args = argv()
    assert option(args, "--user") == ["65534:65534:1"]
    assert option(args, "--group") == ["65534:65534:1"]


def test_a_non_root_caller_maps_the_jail_user_to_itself() -> None:
    args = argv(owner=(1000, 1000))
    assert option(args, "--user") == ["65534:1000:1"]


def test_no_namespace_is_disabled_and_no_capability_kept() -> None:
    head = argv()[: argv().index("--")]
    assert not [a for a in head if a.startswith("--disable_clone") or a == "-N"]
    assert not {"--keep_caps", "--cap", "--keep_env", "--disable_no_new_privs", "--proc_rw"} & set(
        head
    )
    assert "--use_pasta" not in head and "--macvlan_iface" not in head


def test_the_code_goes_in_as_a_read_only_file_never_in_argv() -> None:
    args = argv()
    assert f"/run/r1/code.py:{CODE_PATH}" in option(args, "--bindmount_ro")
    assert args[args.index("--") + 1 :] == ["/usr/bin/python3", "-I", "-S", CODE_PATH]
    bash = argv(language="bash")
    assert bash[bash.index("--") + 1 :] == ["/usr/bin/bash", CODE_PATH]


def test_the_workspace_is_the_only_writable_host_directory_and_the_working_directory() -> None:
    args = argv()
    writable = [m for m in option(args, "--bindmount") if not m.startswith("/dev/")]
    assert writable == [f"/data/workspaces/c1:{WORKSPACE}"]
    assert option(args, "--cwd") == [WORKSPACE]
    assert "/usr" in option(args, "--bindmount_ro") and "/opt/venv" in option(
        args, "--bindmount_ro"
    )
    assert option(args, "--symlink") == ["usr/bin:/bin", "usr/lib:/lib"]


def test_tmp_is_a_tmpfs_of_the_configured_size() -> None:
    args = argv(limits=Limits(tmpfs_mb=8))
    assert option(args, "--mount") == [f"none:/tmp:tmpfs:size={8 * MIB},mode=1777"]


def test_the_environment_is_exactly_the_layouts() -> None:
    assert option(argv(), "--env") == ["HOME=/workspace", "LANG=C.UTF-8", "PATH=/usr/bin:/bin"]


def test_rlimits_follow_the_limits() -> None:
    args = argv(
        limits=Limits(wall_seconds=2.2, cpu_seconds=1.5, file_size_mb=3, open_files=64, tasks=9)
    )
    assert option(args, "--rlimit_cpu") == ["2"]
    assert option(args, "--rlimit_fsize") == ["3"]
    assert option(args, "--rlimit_nofile") == ["64"]
    assert option(args, "--rlimit_nproc") == ["9"]
    assert option(args, "--rlimit_core") == ["0"]
    assert option(args, "--time_limit") == ["4"]  # a backstop behind the caller's exact timer


def test_cgroup_v1_caps_memory_in_our_run_cgroup_and_tasks_with_pids() -> None:
    args = argv(limits=Limits(memory_mb=64, tasks=10))
    assert option(args, "--cgroup_mem_parent") == ["opsloop/run-1-ab"]
    assert option(args, "--cgroup_mem_max") == [str(64 * MIB + CHILD_SLACK)]
    assert option(args, "--cgroup_pids_max") == ["10"]
    assert option(args, "--cgroup_pids_mount") == ["/cg/pids"]
    assert option(args, "--rlimit_as") == ["inf"]


def test_cgroup_v2_caps_memory_with_no_swap_and_tasks() -> None:
    args = argv(cgroups=V2, memory_parent=None, limits=Limits(memory_mb=64, tasks=10))
    assert "--use_cgroupv2" in args
    assert option(args, "--cgroupv2_mount") == ["/cg/opsloop"]
    assert option(args, "--cgroup_mem_max") == [str(64 * MIB)]
    assert option(args, "--cgroup_mem_swap_max") == ["0"]
    assert option(args, "--cgroup_pids_max") == ["10"]


def test_without_cgroups_memory_falls_back_to_an_address_space_rlimit() -> None:
    args = argv(cgroups=NONE, memory_parent=None, limits=Limits(memory_mb=128))
    assert not [a for a in args if a.startswith("--cgroup")]
    assert option(args, "--rlimit_as") == ["128"]


@pytest.mark.parametrize(
    "syscall",
    [
        "ptrace",
        "mount",
        "umount",
        "unshare",
        "setns",
        "kexec_load",
        "kexec_file_load",
        "bpf",
        "keyctl",
        "add_key",
        "request_key",
        "perf_event_open",
    ],
)
def test_seccomp_denies_the_escape_syscalls(syscall: str) -> None:
    denied = SECCOMP_POLICY.split("}")[0]
    assert f" {syscall}," in denied or f"{{ {syscall}," in denied
    assert option(argv(), "--seccomp_string") == [SECCOMP_POLICY]
    assert SECCOMP_POLICY.rstrip().endswith("DEFAULT ALLOW")


def test_the_builder_is_pure() -> None:
    assert argv() == argv()
