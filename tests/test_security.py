"""Hostile-code tests: every default of DockerSandbox is attacked from inside the sandbox.

Each ``test_*`` runs an attack as a cell (``sb.exec``) in a container with the real
defaults and asserts that it fails. Where practical a matching ``test_control_*`` runs
the *same* attack in a :class:`WeakenedSandbox` that differs from DockerSandbox by exactly
one default and asserts that the attack then SUCCEEDS: proof that the first test would
catch the removal of that default, not just pass by accident.

Controls stay harmless and bounded: the network control only talks to a container this
module starts, the fork-bomb control stops itself at 300 processes and kills them, the
memory control allocates 384 MiB once.

Attacks print one line ``RESULT:<json>`` that the test parses, so an assertion failure
shows exactly what the cell saw.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from docker.errors import NotFound

from rlm_sandbox.errors import SandboxError, ValueTooLarge
from rlm_sandbox.kernel.protocol import MAX_BLOB, MAX_HOST_LINE, MAX_KERNEL_LINE
from rlm_sandbox.sandbox import DockerSandbox, ExecResult, Host, SandboxLimits, reap_orphans
from rlm_sandbox.sandbox.attach import AttachedStream
from rlm_sandbox.sandbox.bounds import host_memory_bound
from rlm_sandbox.sandbox.connection import KernelConnection
from rlm_sandbox.sandbox.docker import GVISOR_HOST_TASKS_PER_TASK, task_limit
from rlm_sandbox.sandbox.reaper import LABEL, LABEL_PID
from tests.conftest import fast_limits

pytestmark = pytest.mark.docker

CTX = "the context: 42 lines of secret sauce"
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- helpers ------------------------------------------------------------------------------

#: Every attack runs under both: runc (the host's kernel, namespaces and cgroups) and gVisor
#: (runsc: a user-space kernel in between). tests/conftest.py prints the count per runtime.
RUNTIMES = ("runc", "runsc")


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, docker_client: Any) -> str:
    if request.param not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip(f"the Docker daemon has no {request.param} runtime "
                    "(scripts/setup.sh registers runsc where Debian packages it)")
    return request.param


@pytest.fixture
def make_docker_sandbox(make_docker_sandbox: Callable[..., Any], runtime: str) -> Callable[..., Any]:
    """conftest's factory, with this test's runtime (an explicit ``runtime=`` still wins)."""
    def make(context: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("runtime", runtime)
        return make_docker_sandbox(context, **kwargs)

    return make


@pytest.fixture(scope="session")
def session_labels(request: pytest.FixtureRequest) -> dict[str, str]:
    """The test-session label of the conftest pytest actually loaded, for its leak check.

    (``tests.conftest`` imported by name is a second module with another TEST_SESSION.)"""
    for plugin in request.config.pluginmanager.get_plugins():
        if hasattr(plugin, "TEST_SESSION_LABEL") and hasattr(plugin, "TEST_SESSION"):
            return {plugin.TEST_SESSION_LABEL: plugin.TEST_SESSION}
    raise RuntimeError("tests/conftest.py was not loaded")


def attack(sb: DockerSandbox, code: str, *, timeout: float | None = None, **params: Any) -> dict[str, Any]:
    """Run an attack cell (``params`` become variables in it) and return its RESULT json."""
    prelude = "".join(f"{name} = {value!r}\n" for name, value in params.items())
    result = sb.exec(prelude + textwrap.dedent(code), timeout=timeout)
    assert result.error is None, f"the attack cell itself broke: {result.error}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT:")]
    assert lines, f"the attack printed no RESULT line: {result.stdout!r}"
    return json.loads(lines[-1][len("RESULT:"):])


def assert_still_works(sb: DockerSandbox) -> None:
    result = sb.exec("print(1 + 1)")
    assert (result.error, result.stdout) == (None, "2\n")


class HostGrowth:
    """How much memory this host process allocated from its making to ``mib()``, at the peak.

    tracemalloc sees every Python allocation on every thread of this process, counted from
    zero when it starts: unlike the process's peak RSS (a high-water mark that an earlier
    test may already have raised past anything this one does), it can show this sandbox's
    host side growing; unlike the machine's memory, other work on a shared host is not in it.
    """

    def __init__(self) -> None:
        self._ours = not tracemalloc.is_tracing()
        if self._ours:
            tracemalloc.start()
        tracemalloc.reset_peak()

    def mib(self) -> float:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        if self._ours:
            tracemalloc.stop()
        return peak


def host_process_count(container_id: str) -> int:
    """Host processes in that container's cgroup: the sandbox's own, whatever else the machine runs."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            count += container_id in Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            pass
    return count


class _PatchedApi:
    """docker's low-level API with create_container's arguments edited on the way."""

    def __init__(self, api: Any, patch: Callable[[dict[str, Any]], None]) -> None:
        self._api, self._patch = api, patch

    def create_container(self, *args: Any, **kwargs: Any) -> Any:
        self._patch(kwargs)
        return self._api.create_container(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class _PatchedClient:
    def __init__(self, client: Any, patch: Callable[[dict[str, Any]], None]) -> None:
        self.api = _PatchedApi(client.api, patch)
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class WeakenedSandbox(DockerSandbox):
    """A DockerSandbox with one default removed: the control arm of an attack test.

    ``host`` edits the HostConfig that :meth:`DockerSandbox.host_config` built (network,
    read-only root, tmpfs, caps, limits ...); ``container`` edits the other arguments of
    ``create_container`` (user, environment, network_disabled).
    """

    def __init__(self, *args: Any, host: Callable[[dict[str, Any]], None] | None = None,
                 container: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._weaken_host, self._weaken_container = host, container

    def host_config(self, socket_dir: Path) -> dict[str, Any]:
        config = super().host_config(socket_dir)
        if self._weaken_host is not None:
            self._weaken_host(config)
        return config

    def _docker(self) -> Any:
        client = super()._docker()
        return client if self._weaken_container is None else _PatchedClient(client, self._weaken_container)


@pytest.fixture
def make_weakened(make_docker_sandbox: Callable[..., Any]) -> Callable[..., WeakenedSandbox]:
    def make(context: Any = CTX, **kwargs: Any) -> WeakenedSandbox:
        return make_docker_sandbox(context, sandbox_class=WeakenedSandbox, **kwargs)

    return make


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.__setitem__(key, value)


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def patch(config: dict[str, Any]) -> None:
        for key in keys:
            config.pop(key, None)
    return patch


# == 1. no network ========================================================================

@pytest.fixture(scope="module")
def http_target(sandbox_image: str, docker_client: Any) -> Iterator[str]:
    """An HTTP server in a container on the default bridge; yields its bridge IP."""
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(sandbox_image).with_command("python3 -m http.server 8000")
    container.start()
    try:
        container_id = container.get_wrapped_container().id
        ip = docker_client.api.inspect_container(container_id)["NetworkSettings"]["IPAddress"]
        assert ip, "the target container got no bridge IP"
        deadline = time.monotonic() + 30
        while True:  # from the host, over docker0: the server is up and reachable
            try:
                with socket.create_connection((ip, 8000), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield ip
    finally:
        container.stop()


NETWORK_ATTACK = r'''
import json, os, socket
out = {}
probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
probe.settimeout(3)
try:
    probe.connect((TARGET_IP, 8000))
    probe.sendall(b"GET / HTTP/1.0\r\n\r\n")
    out["http"] = probe.recv(64).decode("latin-1")
except OSError as exc:
    out["http"] = f"{type(exc).__name__} errno={exc.errno}"
finally:
    probe.close()
out["if_nameindex"] = sorted(name for _, name in socket.if_nameindex())
out["sys_class_net"] = sorted(os.listdir("/sys/class/net"))
if CHECK_DNS:
    try:
        out["dns"] = socket.getaddrinfo("pypi.org", 443)[0][4][0]
    except OSError as exc:
        out["dns"] = type(exc).__name__
print("RESULT:" + json.dumps(out))
'''


def test_no_network_reaches_another_container_or_resolves_names(make_docker_sandbox, http_target):
    """Attacks network_mode="none" + network_disabled: the cell connects to an HTTP server
    in another container on the default bridge, lists interfaces and resolves a name. On a
    bridge the connect returns "HTTP/1.0 200", eth0 appears and (on a host with DNS) names
    resolve, so each assertion fails without the default (see the control)."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, NETWORK_ATTACK, TARGET_IP=http_target, CHECK_DNS=True)
    assert not out["http"].startswith("HTTP"), out
    assert out["http"].startswith("OSError"), out
    assert out["if_nameindex"] == ["lo"]
    assert out["sys_class_net"] == ["lo"]
    assert out["dns"] in ("gaierror", "OSError"), out


def test_control_network_attack_succeeds_on_a_bridge(make_weakened, runtime, request):
    """Control: the same attack with NetworkMode=bridge and networking enabled reaches the
    server, so the test above detects a sandbox that is put on a network."""
    if runtime == "runsc":
        pytest.skip("runsc is registered with --network=none (scripts/setup.sh): gVisor gives the sandbox "
                    "no network even on a Docker bridge, so removing network_mode=none removes no defence")
    http_target = request.getfixturevalue("http_target")
    sb = make_weakened(host=_set("NetworkMode", "bridge"),
                       container=lambda kwargs: kwargs.__setitem__("network_disabled", False))
    out = attack(sb, NETWORK_ATTACK, TARGET_IP=http_target, CHECK_DNS=False)
    assert out["http"].startswith("HTTP/1.0 200"), out
    assert "eth0" in out["if_nameindex"]


# == 2. read-only root ====================================================================

READONLY_ATTACK = r'''
import errno, json, os
out = {}
for path, mode in TARGETS:
    try:
        with open(path, mode) as handle:
            handle.write("# pwned\n")
        out[path] = "written"
    except OSError as exc:
        out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
try:
    os.mkdir("/var/tmp/dropper")
    out["mkdir /var/tmp/dropper"] = "written"
except OSError as exc:
    out["mkdir /var/tmp/dropper"] = errno.errorcode.get(exc.errno, str(exc.errno))
with open("/tmp/scratch", "w") as handle:
    handle.write("fine")
out["/tmp/scratch"] = open("/tmp/scratch").read()
print("RESULT:" + json.dumps(out))
'''
# (path, mode): existing files are opened for append so nothing is ever truncated.
READONLY_TARGETS = [("/etc/x", "w"), ("/etc/passwd", "a"), ("/opt/rlm/rlm_kernel/x", "w"),
                    ("/opt/rlm/rlm_kernel/server.py", "a"), ("/home/x", "w"),
                    ("/usr/local/bin/x", "w"), ("/var/tmp/x", "w"), ("/run/lock/x", "w")]
#: Directories the image leaves world-writable: only the read-only root protects them.
WORLD_WRITABLE = ["/var/tmp/x", "/run/lock/x", "mkdir /var/tmp/dropper"]


def test_root_filesystem_is_read_only_and_tmp_is_writable(make_docker_sandbox):
    """Attacks read_only=True: writes to the image (/etc, the kernel's own code, /home, ...)
    fail with EROFS/EACCES. /var/tmp and /run/lock are world-writable in the image, so as
    uid 65534 only the read-only root stops those writes: without it they succeed (see
    the control) and the EROFS assertion fails. /tmp, the tmpfs, stays writable."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, READONLY_ATTACK, TARGETS=READONLY_TARGETS)
    for path, _ in READONLY_TARGETS:
        assert out[path] in ("EROFS", "EACCES"), (path, out)
    for path in WORLD_WRITABLE:
        assert out[path] == "EROFS", (path, out)
    assert out["/tmp/scratch"] == "fine"


def test_control_read_only_attack_succeeds_on_a_writable_root(make_weakened):
    """Control: with ReadonlyRootfs=False the world-writable image directories take writes."""
    sb = make_weakened(host=_set("ReadonlyRootfs", False))
    out = attack(sb, READONLY_ATTACK, TARGETS=READONLY_TARGETS)
    for path in WORLD_WRITABLE:
        assert out[path] == "written", (path, out)


# == 3. /tmp is small and noexec ==========================================================

TMPFS_ATTACK = r'''
import errno, glob, json, os, shutil, subprocess
out = {}
try:
    with open("/tmp/fill", "wb") as handle:
        for _ in range(FILL_MIB):
            handle.write(b"\0" * (1 << 20))
            handle.flush()
    out["fill"] = "written"
except OSError as exc:
    out["fill"] = errno.errorcode.get(exc.errno, str(exc.errno))
out["filled_bytes"] = os.path.getsize("/tmp/fill")
os.remove("/tmp/fill")
shutil.copy("/bin/true", "/tmp/true")
os.chmod("/tmp/true", 0o755)
loader = sorted(glob.glob("/lib64/ld-linux*.so*") + glob.glob("/lib/ld-linux*.so*"))[0]
for name, command in (("exec", ["/tmp/true"]), ("via_loader", [loader, "/tmp/true"])):
    try:
        out[name] = subprocess.run(command, capture_output=True).returncode
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
print("RESULT:" + json.dumps(out))
'''


def test_tmp_is_size_capped_and_not_executable(make_docker_sandbox):
    """Attacks the tmpfs options size=8m and noexec: writing 16 MiB to /tmp hits ENOSPC at
    8 MiB, and a binary copied to /tmp cannot be run, directly (EACCES) or through the
    dynamic loader (mmap PROT_EXEC refused). Without size= the tmpfs takes the whole
    16 MiB, without noexec /tmp/true runs (see the controls)."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(tmpfs_size="8m"))
    out = attack(sb, TMPFS_ATTACK, FILL_MIB=16)
    assert out["fill"] == "ENOSPC", out
    assert out["filled_bytes"] <= 8 << 20
    assert out["exec"] == "EACCES", out
    if sb.runtime != "runsc":  # gVisor's own kernel lets ld.so map it: see README, "gVisor differences"
        assert out["via_loader"] != 0, out
    assert_still_works(sb)


def test_control_tmpfs_without_size_takes_the_whole_fill(make_weakened):
    """Control: the same fill succeeds when the tmpfs has no size= option."""
    sb = make_weakened(limits=fast_limits(tmpfs_size="8m"),
                       host=_set("Tmpfs", {"/tmp": "rw,noexec,nosuid,nodev,mode=1777"}))
    out = attack(sb, TMPFS_ATTACK, FILL_MIB=16)
    assert (out["fill"], out["filled_bytes"]) == ("written", 16 << 20), out


def test_control_tmpfs_without_noexec_runs_the_binary(make_weakened):
    """Control: with exec allowed (Docker adds noexec to tmpfs mounts by itself, so the
    control must say "exec" explicitly) the copied binary runs."""
    sb = make_weakened(limits=fast_limits(tmpfs_size="8m"),
                       host=_set("Tmpfs", {"/tmp": "rw,exec,nosuid,nodev,size=8m,mode=1777"}))
    out = attack(sb, TMPFS_ATTACK, FILL_MIB=4)
    assert out["exec"] == 0 and out["via_loader"] == 0, out


# == 4. uid 65534 and no capabilities =====================================================

PRIVILEGE_ATTACK = r'''
import errno, json, os, socket, stat
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid()}
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    out[key] = int(status[key].strip(), 16) if key in status else None  # gVisor shows no CapAmb

def attempt(name, action):
    try:
        action()
        out[name] = "succeeded"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))

open("/tmp/mine", "w").close()
attempt("chown", lambda: os.chown("/tmp/mine", 1234, 1234))
attempt("mknod", lambda: os.mknod("/tmp/mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1)))
attempt("raw_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
attempt("setuid_0", lambda: os.setuid(0))
attempt("chroot", lambda: os.chroot("/tmp"))
attempt("read_dev_mem", lambda: open("/tmp/mem", "rb").read(1))  # only if the mknod succeeded
print("RESULT:" + json.dumps(out))
'''
PRIVILEGED_ACTIONS = ("chown", "mknod", "raw_socket", "setuid_0", "chroot")


def test_runs_as_nobody_with_no_capabilities(make_docker_sandbox):
    """Attacks user=65534:65534 and cap_drop=["ALL"]: the kernel runs as uid/gid 65534 with
    every capability set empty (CapBnd too, so no exec can regain one), and chown, mknod,
    raw sockets, setuid(0) and chroot are refused. Without cap_drop CapBnd holds Docker's
    default set; as root with default caps every action succeeds (see the controls)."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, PRIVILEGE_ATTACK)
    assert (out["uid"], out["euid"], out["gid"]) == (65534, 65534, 65534)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert out[key] == 0, (key, out[key])
    assert out["CapAmb"] == 0 or (out["CapAmb"] is None and sb.runtime == "runsc"), out
    for action in PRIVILEGED_ACTIONS:
        if action == "mknod" and sb.runtime == "runsc":
            # gVisor's own kernel lets anyone make a device node, but the node opens gVisor's
            # emulated devices only: /dev/mem is not one of them.
            assert out["read_dev_mem"] == "ENXIO", out
            continue
        assert out[action] == "EPERM", (action, out)


def test_control_without_cap_drop_the_bounding_set_is_not_empty(make_weakened):
    """Control: dropping CapDrop leaves Docker's default bounding set (CHOWN, MKNOD,
    NET_RAW, SETUID, ...) that a setuid exec could fill CapEff from."""
    sb = make_weakened(host=_drop("CapDrop"))
    out = attack(sb, PRIVILEGE_ATTACK)
    assert out["CapBnd"] != 0


def test_control_as_root_with_default_caps_every_action_succeeds(make_weakened):
    """Control: user 0:0 plus Docker's default capabilities: the uid check fails and
    chown, mknod and raw sockets all succeed."""
    sb = make_weakened(host=_drop("CapDrop"), container=lambda kwargs: kwargs.__setitem__("user", "0:0"))
    out = attack(sb, PRIVILEGE_ATTACK)
    assert out["uid"] == 0 and out["CapEff"] != 0
    # gVisor registered with --network=none has no raw sockets at all, whoever asks.
    actions = ("chown", "mknod", "setuid_0", "chroot") + (("raw_socket",) if sb.runtime != "runsc" else ())
    for action in actions:
        assert out[action] == "succeeded", (action, out)


# == 5. no new privileges through setuid binaries =========================================

SETUID_ATTACK = r'''
import ctypes, json, os, pty, subprocess, time
no_new_privs = ctypes.CDLL(None).prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS (gVisor's status lacks it)
found = subprocess.run("find / -xdev -perm -4000 -type f 2>/dev/null", shell=True,
                       capture_output=True, text=True).stdout.split()
children = {}
for path in found:  # su, passwd, chfn wait at a password prompt on the pty; others exit
    master, slave = pty.openpty()
    children[path] = (subprocess.Popen([path], stdin=slave, stdout=slave, stderr=slave,
                                       start_new_session=True), master)
    os.close(slave)

def field(pid, name):
    with open(f"/proc/{pid}/status") as handle:
        return next(l for l in handle if l.startswith(name + ":")).split()[1:]

# Popen returns before the exec has committed the new credentials: wait until every
# child is asleep (at its prompt) or a zombie (exited; its final credentials stay).
deadline = time.monotonic() + 5
time.sleep(0.2)
while time.monotonic() < deadline and any(field(c.pid, "State")[0] not in "SZ" for c, _ in children.values()):
    time.sleep(0.05)
uids = {path: [int(x) for x in field(child.pid, "Uid")] for path, (child, _) in children.items()}
for child, master in children.values():
    child.kill()
    child.wait()
    os.close(master)
print("RESULT:" + json.dumps({"NoNewPrivs": no_new_privs, "uids": uids}))
'''


def test_setuid_binaries_cannot_raise_privileges(make_docker_sandbox):
    """Attacks security_opt=["no-new-privileges"]: NoNewPrivs is 1, and running every
    setuid-root binary in the image (su, passwd, mount, ...; su waits at its password
    prompt on a pty) leaves real, effective, saved and fs uid at 65534. Without the
    option NoNewPrivs is 0 and they run with euid 0 (see the control)."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, SETUID_ATTACK)
    assert out["NoNewPrivs"] == 1
    for path, uids in out["uids"].items():
        assert uids == [65534] * 4, (path, uids)


def test_control_without_no_new_privileges_setuid_gives_euid_0(make_weakened, runtime):
    """Control: without no-new-privileges the same exec of a setuid binary yields euid 0."""
    if runtime == "runsc":
        pytest.skip("gVisor sets no_new_privs on every sandbox process whatever the option: "
                    "removing it removes no defence")
    sb = make_weakened(host=_drop("SecurityOpt"))
    out = attack(sb, SETUID_ATTACK)
    assert out["NoNewPrivs"] == 0
    raised = sorted(path for path, uids in out["uids"].items() if uids[1] == 0)
    assert any(path.endswith("/su") for path in raised), out


# == 6. fork bomb =========================================================================

FORK_BOMB = r'''
import errno, json, os, signal, time
children, error, pids_at_error = [], None, None
try:
    while len(children) < MAX_FORKS:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    error = errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        pids_at_error = int(open("/sys/fs/cgroup/pids/pids.current").read())
    except OSError:
        pass
finally:
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
print("RESULT:" + json.dumps({"forks": len(children), "error": error, "pids_at_error": pids_at_error}))
'''


def test_fork_bomb_is_stopped_by_the_pids_limit(make_docker_sandbox):
    """Attacks pids_limit (pids=64): a bomb that forks sleeping children until it gets an
    error (or reaches 300) is refused with EAGAIN below 64 processes, the host's process
    count is back to normal afterwards and the sandbox still answers. Without the limit
    the bomb reaches its 300 cap with no error (see the control)."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(pids=64, cell_timeout_s=30))
    before = host_process_count(sb.container_id)
    out = attack(sb, FORK_BOMB, MAX_FORKS=300)
    assert out["error"] == "EAGAIN", out
    assert out["forks"] < 64
    if out["pids_at_error"] is not None:
        assert out["pids_at_error"] <= 64
    assert_still_works(sb)
    if sb.runtime == "runsc":  # the host sees gVisor's own processes: count the guest's
        assert len(attack(sb, "import json, os\nprint('RESULT:' + json.dumps("
                              "[p for p in os.listdir('/proc') if p.isdigit()]))")) <= 4
    else:
        assert host_process_count(sb.container_id) <= 4  # init, kernel (+ a moment's helper)
    assert host_process_count(sb.container_id) < before + 100  # the sandbox's, seen by the host; 300 would show


def test_fork_flood_under_the_default_limits_gets_eagain_and_the_kernel_lives(make_docker_sandbox):
    """The same bomb under the DEFAULT limits (pids 256, memory 1g), not tightened ones: it
    is refused with EAGAIN under both runtimes and the kernel keeps its variables. Under
    gVisor a forked kernel costs the sandbox 7-9 MiB (0.8 MiB under runc), so 256 of them
    used to exhaust the 1 GiB: the kernel was OOM-killed and restarted, its variables lost.
    There memory now bounds the number of tasks too (task_limit: 64 at 1 GiB)."""
    limits = SandboxLimits()
    assert (limits.memory, limits.pids) == ("1g", 256)
    sb = make_docker_sandbox(CTX, limits=limits)
    assert sb.exec("kept = 41").ok
    out = attack(sb, FORK_BOMB, MAX_FORKS=300)
    assert out["error"] == "EAGAIN" and out["forks"] < task_limit(limits, sb.runtime), out
    after = sb.exec("print(kept + 1)")
    assert (after.error, after.restarted, after.stdout, sb.restarts) == (None, False, "42\n", 0)


def test_the_task_limit_follows_memory_under_gvisor_only():
    """runc: pids. gVisor: at most one task per 16 MiB of memory, at least 8, never over pids."""
    assert task_limit(SandboxLimits(), "runc") == task_limit(SandboxLimits(), None) == 256
    assert task_limit(SandboxLimits(), "runsc") == task_limit(SandboxLimits(), "runsc-kvm") == 64
    assert task_limit(SandboxLimits(memory="8g"), "runsc") == 256  # pids still caps it
    assert task_limit(SandboxLimits(memory="2g", pids=100), "runsc") == 100
    assert task_limit(SandboxLimits(memory="64m"), "runsc") == 8
    assert task_limit(SandboxLimits(memory="128m", pids=8), "runsc") == 8


def test_control_fork_bomb_without_pids_limit_reaches_its_cap(make_weakened):
    """Control: with no PidsLimit (and, under gVisor, no nproc ulimit) the same bomb forks
    150 children without an error (and then kills them)."""
    # 150 sleeping children: far past 64, and within 3 GiB under gVisor too (its forks cost more).
    sb = make_weakened(limits=fast_limits(pids=64, cell_timeout_s=60, memory="3g"),
                       host=_drop("PidsLimit", "Ulimits"))
    out = attack(sb, FORK_BOMB, MAX_FORKS=150)
    assert (out["forks"], out["error"]) == (150, None), out


# == 7. memory bomb =======================================================================

MEMORY_BOMBS = {
    "one_big_bytes": "hog = b'x' * (384 << 20)\nprint(len(hog))",
    "growing_list": "hog = []\nwhile len(hog) < 48:\n    hog.append(b'x' * (8 << 20))\nprint(len(hog) * (8 << 20))",
    "one_gigabyte": "hog = b'x' * 10**9\nprint(len(hog))",
}


@pytest.mark.parametrize("bomb", sorted(MEMORY_BOMBS))
def test_memory_bomb_is_stopped_by_the_memory_limit(make_docker_sandbox, bomb):
    """Attacks mem_limit == memswap_limit (memory="128m"): allocating and touching 384 MiB
    ends in MemoryError or in the kernel being OOM-killed, reported as KernelDied with
    "memory" in the message and restarted=True; the host process does not grow and the
    sandbox answers afterwards with the context reloaded. Without the limit the
    allocation succeeds and prints its size (see the control)."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(memory="128m", cell_timeout_s=30))
    growth = HostGrowth()
    result = sb.exec(MEMORY_BOMBS[bomb])
    assert result.error is not None, result
    if result.error.type == "MemoryError":
        assert not result.restarted
    else:
        assert result.error.type == "KernelDied", result.error
        assert "memory" in result.error.message.lower(), result.error.message
        assert result.restarted
    assert str(384 << 20) not in result.stdout and str(10**9) not in result.stdout
    assert growth.mib() < 100
    assert sb.exec("print(context)").stdout == CTX + "\n"


def test_control_memory_bomb_without_memory_limit_succeeds(make_weakened):
    """Control: with Memory and MemorySwap unset the same 384 MiB allocation succeeds."""
    sb = make_weakened(limits=fast_limits(memory="128m", cell_timeout_s=30), host=_drop("Memory", "MemorySwap"))
    result = sb.exec(MEMORY_BOMBS["one_big_bytes"])
    assert (result.error, result.stdout) == (None, f"{384 << 20}\n")


# == 8. host environment ==================================================================

ENV_ATTACK = r'''
import glob, json, os
out = {"os.environ": dict(os.environ)}
for path in ["/proc/1/environ", "/proc/self/environ"] + sorted(glob.glob("/proc/[0-9]*/environ")):
    try:
        out[path] = open(path, "rb").read().decode("utf-8", "replace")
    except OSError as exc:
        out[path] = repr(exc)
out["/run/rlm"] = sorted(os.listdir("/run/rlm"))
print("RESULT:" + json.dumps(out))
'''
FAKE_KEY = "sk-test-fake-0123456789abcdef-never-leaves-the-host"


def test_host_environment_is_invisible(make_docker_sandbox, monkeypatch):
    """Attacks "no host env vars": with OPENAI_API_KEY set on the host, the key is in
    neither os.environ nor any /proc/*/environ inside. The kernel's one-time token is
    gone from os.environ; it is still visible in /proc/1/environ, but the listener it
    opened is closed and its socket removed (/run/rlm is empty), so it opens nothing.
    A sandbox that passed the host environment through shows the key (see the control)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    sb = make_docker_sandbox(CTX)
    out = attack(sb, ENV_ATTACK)
    assert FAKE_KEY not in json.dumps(out)
    assert "OPENAI_API_KEY" not in json.dumps(out)
    assert "RLM_KERNEL_TOKEN" not in out["os.environ"]
    assert "RLM_KERNEL_SOCKET" not in out["os.environ"]
    assert out["/run/rlm"] == []


def test_control_passing_the_host_env_through_leaks_the_key(make_weakened, monkeypatch):
    """Control: a sandbox whose container gets the host's os.environ shows the key."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    sb = make_weakened(container=lambda kwargs: kwargs.__setitem__(
        "environment", {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **kwargs["environment"]}))
    out = attack(sb, ENV_ATTACK)
    assert out["os.environ"].get("OPENAI_API_KEY") == FAKE_KEY


# == 9. output floods =====================================================================

FLOODS = {
    "print_loop": "while True:\n    print('x' * 1000)",
    "stderr_loop": "import sys\nwhile True:\n    sys.stderr.write('e' * 1000 + '\\n')",
    "subprocess_os_write": ("import subprocess, sys\nsubprocess.run([sys.executable, '-c', "
                            "'import os\\nwhile True: os.write(1, b\"y\" * 65536)'])"),
}


@pytest.mark.parametrize("flood", sorted(FLOODS))
def test_output_flood_is_capped(make_docker_sandbox, flood):
    """Attacks the output cap (limits.max_stream_chars) with an endless flood from print,
    from stderr, and from a child process writing to fd 1: the cell is interrupted at its
    timeout, the result keeps at most max_output_chars per stream plus the omission
    marker, says it was truncated, the host process does not grow, and no flooder is
    left writing into the next cell."""
    cap = 10_000
    sb = make_docker_sandbox(CTX, limits=fast_limits(max_stream_chars=cap, cell_timeout_s=1.5))
    growth = HostGrowth()
    result = sb.exec(FLOODS[flood])
    assert result.timed_out and result.error is not None and result.error.type == "CellTimeout"
    text, truncated = ((result.stderr, result.stderr_truncated) if flood == "stderr_loop"
                       else (result.stdout, result.stdout_truncated))
    assert truncated
    assert len(text) <= cap + 100, len(text)
    assert len(result.stdout) <= cap + 100 and len(result.stderr) <= cap + 100
    assert growth.mib() < 50
    time.sleep(0.2)
    assert_still_works(sb)


# == 10. protocol fuzzing =================================================================

FIND_KERNEL_SOCKET = r'''
import gc, json, os, socket, stat
def kernel_socket():
    for fd in range(3, 1024):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return socket.socket(fileno=os.dup(fd))
        except OSError:
            pass
    raise RuntimeError("no socket found")
def running_exec_id():
    server = next(o for o in gc.get_objects() if type(o).__name__ == "KernelServer")
    return server._running_exec
sock = kernel_socket()
'''


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


#: What a cell writes to the kernel's socket, i.e. straight at the host. Each value is
#: Python source for a bytes expression, evaluated inside the cell.
FROM_CELL = {
    "garbage_line": "b'garbage\\n'",
    "invalid_utf8": "b'\\xff\\xfe\\xfd\\n'",
    "json_array": "b'[1, 2, 3]\\n'",
    "fake_hello": "json.dumps({'type': 'hello', 'protocol': 1, 'token': 'x' * 32}).encode() + b'\\n'",
    "reply_to_nobody": "json.dumps({'type': 'reply', 'id': 10**6, 'ok': True, 'stdout': 'forged'}).encode() + b'\\n'",
    "forged_ok_reply": ("json.dumps({'type': 'reply', 'id': running_exec_id(), 'ok': True, 'stdout': 123, "
                        "'error': {'type': ['x'], 'lineno': 'x'}, 'final': {'answer': 5}, "
                        "'duration_s': 'slow'}).encode() + b'\\n'"),
    "forged_error_reply": "json.dumps({'type': 'reply', 'id': running_exec_id(), 'ok': False}).encode() + b'\\n'",
    "huge_blob_header": ("json.dumps({'type': 'reply', 'id': running_exec_id(), 'ok': True, "
                         "'blob': 10**12}).encode() + b'\\n'"),
    "call_unknown_function": ("json.dumps({'type': 'call', 'id': 'c999', 'name': 'os.system', "
                              "'args': ['rm -rf /'], 'kwargs': {}}).encode() + b'\\n'"),
    "call_with_bad_id": "json.dumps({'type': 'call', 'id': 7, 'name': 'x', 'args': 5}).encode() + b'\\n'",
    "oversized_line": f"b'a' * ({MAX_KERNEL_LINE} + 1024) + b'\\n'",
    "partial_line": "b'{\"type\": \"reply\", \"id\"'",
}


@pytest.mark.parametrize("case", sorted(FROM_CELL))
def test_cell_writing_junk_to_the_host_cannot_break_it(make_docker_sandbox, case):
    """Attacks "the host validates everything the kernel sends": a cell finds the kernel's
    own socket (an fd of type socket) and writes junk at the host: garbage, invalid UTF-8,
    JSON that is not an object, a fake hello, replies nobody asked for, a forged reply to
    its own exec with wrong-typed fields, a blob header the host must refuse, callbacks it
    must refuse, a line over MAX_KERNEL_LINE, half a line. The host neither crashes nor
    hangs: exec returns a result (a forged ok=false reply may instead surface as a
    SandboxError, or a desynchronised stream as a restart) and the next cell works."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=3, interrupt_grace_s=1))
    code = FIND_KERNEL_SOCKET + f"sock.sendall({FROM_CELL[case]})\nprint('sent')\n"
    growth = HostGrowth()
    started = time.monotonic()
    try:
        result: ExecResult | None = sb.exec(code)
    except SandboxError:
        assert case == "forged_error_reply"
        result = None
    assert time.monotonic() - started < 20
    if result is not None:
        assert isinstance(result.stdout, str) and isinstance(result.duration_s, float)
        assert result.final is None or isinstance(result.final.answer, str)
    assert growth.mib() < 3 * MAX_KERNEL_LINE / 2**20 + 50
    assert_still_works(sb)
    assert sb.exec("print(context)").stdout == CTX + "\n"


#: Raw bytes the host sends the kernel, and the id the error reply must carry.
TO_KERNEL = {
    "garbage_line": (b"garbage\n", None),
    "invalid_utf8": (b"\xff\xfe\xfd\n", None),
    "json_array": (b"[1, 2]\n", None),
    "oversized_line": (b"a" * (MAX_HOST_LINE + 1024) + b"\n", None),
    "negative_blob": (_line({"type": "context", "id": 71, "kind": "str", "blob": -1}), None),
    "blob_over_cap": (_line({"type": "context", "id": 72, "kind": "str", "blob": MAX_BLOB + 1}), None),
    "unknown_type": (_line({"type": "format_disk", "id": 73}), 73),
    "exec_non_string_code": (_line({"type": "exec", "id": 74, "code": ["import os"]}), 74),
    "exec_without_id": (_line({"type": "exec", "code": 5}), None),
    "get_bad_name": (_line({"type": "get", "id": 75, "name": 5}), 75),
    "context_without_blob": (_line({"type": "context", "id": 76, "kind": "str"}), 76),
    "configure_bad_cap": (_line({"type": "configure", "id": 77, "max_output_chars": -1}), 77),
    "configure_bad_callbacks": (_line({"type": "configure", "id": 78, "callbacks": 5}), 78),
}


@pytest.mark.parametrize("case", sorted(TO_KERNEL))
def test_kernel_answers_raw_junk_with_an_error_and_keeps_working(make_docker_sandbox, case):
    """Attacks the kernel's side of the protocol (both sides cap lines and answer bad input
    with an error): raw junk written on the host's end of the socket gets a reply with
    ok=false and the request's id (or None when there is none), and the kernel goes on
    serving cells with its state intact."""
    raw, expected_id = TO_KERNEL[case]
    sb = make_docker_sandbox(CTX, limits=fast_limits())
    assert sb.exec("kept = 41").ok
    sb._conn._sock.sendall(raw)
    reply = sb._conn.read(timeout=10)
    assert reply["type"] == "reply" and reply["ok"] is False, reply
    assert reply["id"] == expected_id, reply
    assert isinstance(reply["error"]["type"], str) and reply["error"]["message"]
    assert sb.exec("print(kept + 1)").stdout == "42\n"


# == 11. no container left behind =========================================================

def _container_gone(docker_client: Any, container_id: str) -> bool:
    try:
        docker_client.api.inspect_container(container_id)
    except NotFound:
        return True
    return False


def test_close_removes_the_container_and_socket_dir(make_docker_sandbox, docker_client):
    """Attacks "removal on close": after close() the container and the host socket
    directory are gone, and a second close() is harmless."""
    sb = make_docker_sandbox(CTX)
    container_id, socket_dir = sb.container_id, sb.socket_dir
    assert container_id and not _container_gone(docker_client, container_id)
    sb.close()
    assert _container_gone(docker_client, container_id)
    assert socket_dir is not None and not socket_dir.exists()
    sb.close()


def test_exception_inside_with_removes_the_container(sandbox_image, docker_client, session_labels, runtime):
    """Attacks removal on error: an exception raised inside ``with`` still removes the
    container."""
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        with DockerSandbox(CTX, image=sandbox_image, client=docker_client, labels=session_labels,
                           runtime=runtime) as sb:
            seen.append(sb.container_id or "")
            raise RuntimeError("boom")
    assert seen[0] and _container_gone(docker_client, seen[0])


class _OnlyOurContainers:
    """A docker client that lists only this test session's containers, so reap_orphans()
    cannot touch other people's (other engineers' test runs share this daemon)."""

    def __init__(self, client: Any, labels: dict[str, str]) -> None:
        self._client, self._labels = client, labels
        self.api = self

    def containers(self, **kwargs: Any) -> Any:
        filters = dict(kwargs.pop("filters", None) or {})
        wanted = filters.get("label") or []
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        filters["label"] = wanted + [f"{k}={v}" for k, v in self._labels.items()]
        return self._client.api.containers(filters=filters, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.api, name)


ORPHAN_MAKER = r'''
import json, os, sys
from rlm_sandbox.sandbox import DockerSandbox
sb = DockerSandbox("orphan", image=sys.argv[1], labels=json.loads(sys.argv[2]), runtime=sys.argv[3]).start()
print(json.dumps({"id": sb.container_id, "socket_dir": str(sb.socket_dir)}), flush=True)
os._exit(0)  # no close(), no atexit: like a process killed outright
'''


def test_reap_orphans_removes_containers_of_dead_processes(sandbox_image, docker_client, session_labels, runtime):
    """Attacks the owner labels: a child process starts a sandbox and dies without
    closing it; the container survives it, labelled with the dead pid, and reap_orphans()
    removes it and its socket directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", ORPHAN_MAKER, sandbox_image, json.dumps(session_labels), runtime],
                           capture_output=True, text=True, timeout=120, env=env)
    assert child.returncode == 0, child.stderr
    made = json.loads(child.stdout.strip().splitlines()[-1])
    container_id = made["id"]
    try:
        labels = docker_client.api.inspect_container(container_id)["Config"]["Labels"]
        assert labels[LABEL] == "1" and int(labels[LABEL_PID]) != os.getpid()
        removed = reap_orphans(client=_OnlyOurContainers(docker_client, session_labels))
        assert container_id in removed
        assert _container_gone(docker_client, container_id)
        assert not Path(made["socket_dir"]).exists()
    finally:
        if not _container_gone(docker_client, container_id):
            docker_client.api.remove_container(container_id, force=True)


def test_reap_orphans_leaves_live_sandboxes_alone(make_docker_sandbox, docker_client, session_labels):
    """The reaper must not be a weapon either: a live sandbox of this process survives it."""
    sb = make_docker_sandbox(CTX)
    assert sb.container_id not in reap_orphans(client=_OnlyOurContainers(docker_client, session_labels))
    assert_still_works(sb)


# == 12. private IPC, cgroup limits =======================================================

CGROUP_PROBE = r'''
import json, os
def read(*candidates):
    for path in candidates:
        try:
            return open(path).read().strip()
        except OSError:
            pass
    return None
out = {
    "memory": read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
    "memsw": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
    "swap_v2": read("/sys/fs/cgroup/memory.swap.max"),
    "cfs_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"),
    "cfs_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"),
    "cpu_max_v2": read("/sys/fs/cgroup/cpu.max"),
    "pids": read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
}
print("RESULT:" + json.dumps(out))
'''


#: CGROUP_PROBE's files, as cgroup v1 controller and file name, for reading on the host.
HOST_CGROUP_FILES = {
    "memory": ("memory", "memory.limit_in_bytes"), "memsw": ("memory", "memory.memsw.limit_in_bytes"),
    "cfs_quota": ("cpu", "cpu.cfs_quota_us"), "cfs_period": ("cpu", "cpu.cfs_period_us"),
    "pids": ("pids", "pids.max"),
}


def host_cgroup_probe(container_id: str) -> dict[str, Any]:
    """CGROUP_PROBE's answers read from the host, for gVisor (whose guest sees no cgroup
    files: the limits apply to the whole gVisor sandbox on the host)."""
    out: dict[str, Any] = {"swap_v2": None, "cpu_max_v2": None}
    for key, (controller, name) in HOST_CGROUP_FILES.items():
        path = Path("/sys/fs/cgroup", controller, "docker", container_id, name)
        out[key] = path.read_text().strip() if path.exists() else None
    if out["memory"] is None:
        pytest.skip("the container's cgroup v1 files are not on this host (cgroup v2 or a remote daemon)")
    return out


def cgroup_probe(sb: DockerSandbox) -> dict[str, Any]:
    """The limits as the kernel enforces them: read inside under runc; under gVisor on the
    host, plus the nproc limit gVisor's kernel enforces instead of the pids cgroup."""
    if sb.runtime != "runsc":
        return attack(sb, CGROUP_PROBE)
    out = host_cgroup_probe(sb.container_id or "")
    nproc = attack(sb, "import json, resource\n"
                       "print('RESULT:' + json.dumps(resource.getrlimit(resource.RLIMIT_NPROC)))")
    out["host_pids"], out["pids"] = out["pids"], str(nproc[0]) if nproc[0] == nproc[1] and nproc[0] >= 0 else "max"
    return out


def test_cgroup_limits_are_the_configured_ones(make_docker_sandbox):
    """Attacks mem_limit, memswap_limit, nano_cpus and pids_limit by reading the cgroup
    files the kernel enforces them with: memory and memory+swap are both 128 MiB (no
    swap to escape into), the CFS quota is half the period (cpus=0.5), pids.max is 64
    (under gVisor: read on the host, and the process limit is RLIMIT_NPROC, 8 for 128 MiB of
    memory, see task_limit). Dropping any of them shows "max"/-1/9223372036854771712."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(memory="128m", cpus=0.5, pids=64))
    out = cgroup_probe(sb)
    assert out["memory"] == str(128 << 20), out
    if out["memsw"] is not None:  # cgroup v1 (with swap accounting)
        assert out["memsw"] == str(128 << 20), out
    if out["swap_v2"] is not None:  # cgroup v2: memory.swap.max is the swap beyond memory
        assert out["swap_v2"] == "0", out
    if out["cpu_max_v2"] is not None:
        quota, period = out["cpu_max_v2"].split()
    else:
        quota, period = out["cfs_quota"], out["cfs_period"]
    assert int(quota) * 2 == int(period), out
    # gVisor: RLIMIT_NPROC, which 128 MiB of memory lowers to 8 (task_limit)
    assert out["pids"] == ("64" if sb.runtime != "runsc" else "8"), out
    if sb.runtime == "runsc":  # the cgroup is the host's ceiling on gVisor's own threads
        assert out["host_pids"] == str(64 * GVISOR_HOST_TASKS_PER_TASK), out


def test_control_cgroup_probe_sees_dropped_limits(make_weakened):
    """Control: with Memory, MemorySwap, NanoCpus and PidsLimit dropped the same probe
    reads no limit at all, so each assertion above would fail."""
    sb = make_weakened(limits=fast_limits(memory="128m", cpus=0.5, pids=64),
                       host=_drop("Memory", "MemorySwap", "NanoCpus", "PidsLimit", "Ulimits"))
    out = cgroup_probe(sb)
    assert out["memory"] != str(128 << 20) and out["pids"] != "64", out
    quota = out["cpu_max_v2"].split()[0] if out["cpu_max_v2"] is not None else out["cfs_quota"]
    assert quota in ("-1", "max"), out


IPC_PROBE = r'''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
out = {"ns": os.readlink("/proc/self/ns/ipc") if os.path.exists("/proc/self/ns/ipc") else None,
       "keys": [key for key in LOOK_FOR if libc.shmget(key, 0, 0) >= 0]}  # gVisor has no /proc/sysvipc
if MAKE_KEY:
    out["shmget"] = libc.shmget(MAKE_KEY, 4096, 0o1000 | 0o600)  # IPC_CREAT
print("RESULT:" + json.dumps(out))
'''
IPC_CREAT, IPC_RMID = 0o1000, 0


def test_ipc_namespace_is_private(make_docker_sandbox, make_weakened, runtime):
    """Attacks ipc_mode="private": the sandbox's IPC namespace differs from the host's, a
    System V shared-memory segment the host made is invisible inside, and a segment one
    sandbox makes is invisible to another sandbox and to the host. With IpcMode=host the
    host's segment is visible (control at the end of this test). Under gVisor System V IPC
    is gVisor's own and it shows no /proc/self/ns/ipc: the segments are checked, the
    namespace names and the control (IpcMode=host cannot share gVisor's IPC) do not apply."""
    libc = ctypes.CDLL(None, use_errno=True)
    host_key, sandbox_key = 0x524C4D00 + os.getpid() % 0xFF, 0x524C4E00 + os.getpid() % 0xFF
    shm_id = libc.shmget(host_key, 4096, IPC_CREAT | 0o600)
    assert shm_id >= 0, errno.errorcode.get(ctypes.get_errno())
    try:
        first = make_docker_sandbox(CTX)
        second = make_docker_sandbox(CTX)
        look_for = [host_key, sandbox_key]
        out_first = attack(first, IPC_PROBE, MAKE_KEY=sandbox_key, LOOK_FOR=[host_key])
        assert out_first["shmget"] >= 0
        out_second = attack(second, IPC_PROBE, MAKE_KEY=0, LOOK_FOR=look_for)
        if runtime == "runc":
            assert out_first["ns"] != os.readlink("/proc/self/ns/ipc") != out_second["ns"] != out_first["ns"]
        assert host_key not in out_first["keys"] and host_key not in out_second["keys"]
        assert sandbox_key not in out_second["keys"]
        host_keys = [int(line.split()[0]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
        assert sandbox_key not in host_keys
        if runtime == "runsc":
            return
        # control: the same probe in a sandbox on the host's IPC namespace sees the segment
        weak = make_weakened(host=_set("IpcMode", "host"))
        out_weak = attack(weak, IPC_PROBE, MAKE_KEY=0, LOOK_FOR=look_for)
        assert host_key in out_weak["keys"] and out_weak["ns"] == os.readlink("/proc/self/ns/ipc")
    finally:
        libc.shmctl(shm_id, IPC_RMID, None)


# == logs cannot fill the disk ============================================================

LOG_FLOOD = r'''
import json, os
# The kernel's own fds 1/2 are pipes it reads, but docker-init (pid 1, same uid) still
# holds the container's log stream: write 4 MiB into it.
fd = os.open("/proc/1/fd/2", os.O_WRONLY)
chunk = b"L" * 65535 + b"\n"
for _ in range(64):
    view = memoryview(chunk)
    while view:  # a pipe may take part of a write (gVisor's often does)
        view = view[os.write(fd, view):]
os.close(fd)
print("RESULT:" + json.dumps({"written": 64 * 65536}))
'''


def _log_bytes(docker_client: Any, container_id: str) -> int:
    log_path = Path(docker_client.api.inspect_container(container_id)["LogPath"])
    if not log_path.parent.is_dir():
        pytest.skip("the daemon's log files are not on this machine (remote DOCKER_HOST)")
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # dockerd copies the stream asynchronously
        size = sum(p.stat().st_size for p in log_path.parent.glob(log_path.name + "*"))
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since > 0.5:
            break
        time.sleep(0.1)
    return last


def test_container_log_is_capped(make_docker_sandbox, docker_client):
    """Attacks the json-file log options (max-size=1m, max-file=1): 4 MiB written into the
    container's log stream through pid 1's stderr leave at most ~2 MiB of log files on
    the host disk. Without max-size all 4 MiB land there (see the control)."""
    sb = make_docker_sandbox(CTX)
    assert attack(sb, LOG_FLOOD)["written"] == 4 << 20
    assert _log_bytes(docker_client, sb.container_id) < 2.5 * (1 << 20)


def test_control_log_without_max_size_takes_everything(make_weakened, docker_client):
    """Control: with a json-file log without size options, the 4 MiB all reach the disk."""
    sb = make_weakened(host=_set("LogConfig", {"Type": "json-file", "Config": {}}))
    attack(sb, LOG_FLOOD)
    assert _log_bytes(docker_client, sb.container_id) >= 4 << 20


# == 13. hangs the interrupt cannot stop ==================================================

UNINTERRUPTIBLE = {
    "sigint_ignored_busy_loop": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    "sigint_blocked_c_sleep": ("import ctypes, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
                               "ctypes.CDLL(None).sleep(1000)"),
    "interrupt_swallowed": ("import time\nwhile True:\n    try:\n        time.sleep(100)\n"
                            "    except BaseException:\n        pass"),
}


@pytest.mark.parametrize("hang", sorted(UNINTERRUPTIBLE))
def test_cell_that_ignores_the_interrupt_gets_its_kernel_replaced(make_docker_sandbox, docker_client, hang):
    """Attacks the timeout: a cell that ignores, blocks or swallows SIGINT (also in C:
    libc sleep with SIGINT masked) is killed with its container after interrupt_grace_s;
    the result says timed_out/restarted and that variables were lost, the old container
    is gone, context is reloaded and old variables are not."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=1, interrupt_grace_s=1))
    assert sb.exec("secret = 42").ok
    old_container = sb.container_id
    result = sb.exec(UNINTERRUPTIBLE[hang])
    assert result.timed_out and result.restarted, result
    assert result.error is not None and result.error.type == "CellTimeout"
    assert "lost" in result.error.message
    assert sb.restarts == 1 and sb.container_id != old_container
    assert _container_gone(docker_client, old_container)
    assert sb.exec("print(context)").stdout == CTX + "\n"
    assert sb.exec("secret").error.type == "NameError"


def test_sleeping_cell_is_interrupted_without_a_restart(make_docker_sandbox):
    """A cell blocked in time.sleep(10**6) is woken by the interrupt: no restart, and the
    variables survive."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=1, interrupt_grace_s=2))
    assert sb.exec("kept = 7").ok
    result = sb.exec("import time\ntime.sleep(10**6)")
    assert result.timed_out and not result.restarted
    assert result.error is not None and result.error.type == "CellTimeout"
    assert sb.exec("print(kept)").stdout == "7\n"


def test_catastrophic_regex_is_stopped(make_docker_sandbox):
    """re.match(r"(a+)+$", "a"*40 + "b") runs for ages inside C code that may not check
    for signals: it is interrupted or, failing that, its kernel is replaced. Either way
    the call returns in bounded time and the sandbox works afterwards."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=1, interrupt_grace_s=1))
    started = time.monotonic()
    result = sb.exec('import re\nre.match(r"(a+)+$", "a" * 40 + "b")')
    assert time.monotonic() - started < 15
    assert result.timed_out and result.error is not None and result.error.type == "CellTimeout"
    assert_still_works(sb)


# == Findings: these fail against the current code (see each docstring) ====================

def test_the_socket_directory_mount_is_not_writable(make_docker_sandbox):
    """Attacks "the only host path mounted is the sandbox's socket directory": /run/rlm is
    a bind mount of a host directory (in the host's /tmp, on the host disk) that is
    mounted rw and chowned to uid 65534, so a cell can write there without the tmpfs size
    cap (filling the host disk) and without noexec (running binaries it dropped).
    It must refuse writes, e.g. by binding it read-only (connect() to a socket works on
    a read-only bind mount) or by leaving the directory root-owned, only the socket
    file owned by 65534."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(tmpfs_size="8m"))
    out = attack(sb, r'''
import errno, json, os, shutil, subprocess
out = {}
try:
    with open("/run/rlm/fill", "wb") as handle:
        for _ in range(16):
            handle.write(b"\0" * (1 << 20))
    out["fill"] = os.path.getsize("/run/rlm/fill")
except OSError as exc:
    out["fill"] = errno.errorcode.get(exc.errno, str(exc.errno))
try:
    shutil.copy("/bin/true", "/run/rlm/true")
    os.chmod("/run/rlm/true", 0o755)
    out["exec"] = subprocess.run(["/run/rlm/true"]).returncode
except OSError as exc:
    out["exec"] = errno.errorcode.get(exc.errno, str(exc.errno))
print("RESULT:" + json.dumps(out))
''')
    assert out["fill"] in ("EROFS", "EACCES"), f"a cell wrote {out['fill']} bytes to the host disk"
    assert out["exec"] != 0, "a cell ran a binary it dropped in the host-mounted socket directory"


def test_planted_socket_file_cannot_block_the_restart(make_docker_sandbox):
    """Attacks the restart path through the same writable mount: a cell creates
    /run/rlm/kernel.sock and then ignores the interrupt. The host reuses the socket
    directory on restart and bind() fails with EADDRINUSE, so exec raises OSError and every
    later exec does too: one cell permanently breaks the sandbox. The restart must
    succeed (read-only mount, or unlink/fresh directory before bind)."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=1, interrupt_grace_s=1))
    result = sb.exec("try:\n    open('/run/rlm/kernel.sock', 'w').close()\nexcept OSError:\n    pass\n"
                     "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
    assert result.restarted and result.timed_out
    assert sb.exec("print(context)").stdout == CTX + "\n"


PARSER_BOMBS = {
    "deep_nesting": "b'[' * 100000 + b'\\n'",
    "huge_integer": "b'{\"type\": \"reply\", \"id\": ' + b'1' * 5000 + b'}\\n'",
}


@pytest.mark.parametrize("case", sorted(PARSER_BOMBS))
def test_json_parser_bombs_from_a_cell_do_not_escape_exec(make_docker_sandbox, case):
    """Attacks the host's line parser: json.loads raises RecursionError on deeply nested
    input and ValueError ("Exceeds the limit (4300 digits)") on a huge integer, neither a
    JSONDecodeError, so FrameReader.read lets them through, KernelConnection.wait does not
    catch them, and sb.exec() raises RecursionError/ValueError at the caller: one cell
    aborts the host's run. They must be treated as a malformed line (FrameError)."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=3, interrupt_grace_s=1))
    code = FIND_KERNEL_SOCKET + f"sock.sendall({PARSER_BOMBS[case]})\nprint('sent')\n"
    result = sb.exec(code)  # must return, not raise
    assert isinstance(result, ExecResult)
    assert_still_works(sb)


KERNEL_CRASHERS = {
    "deep_nesting": b"[" * 100000 + b"\n",
    "huge_integer": b'{"type": "ping", "id": ' + b"1" * 5000 + b"}\n",
    "reply_with_list_id": _line({"type": "reply", "id": [1]}),
    "type_is_a_list": _line({"type": [1], "id": 79}),
}


@pytest.mark.parametrize("case", sorted(KERNEL_CRASHERS))
def test_kernel_survives_malformed_messages_that_crash_its_threads(make_docker_sandbox, case):
    """Attacks "neither side ever crashes on bad input", kernel side. Today:
    deep nesting / huge integers raise RecursionError / ValueError out of
    FrameReader.read, which KernelServer._read_loop does not catch: the reader thread
    dies and the kernel goes deaf (no reply; the next exec times out and restarts).
    {"type":"reply","id":[1]} makes HostCalls.resolve hash a list (TypeError) and kills
    the reader thread the same way. {"type":[1]} makes KernelServer._handle hash a list
    outside its try: the main thread dies and the kernel exits. Each must get an error
    reply (or, for a reply message, be dropped) and the kernel must keep its state."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=2, interrupt_grace_s=1))
    assert sb.exec("kept = 41").ok
    sb._conn._sock.sendall(KERNEL_CRASHERS[case])
    if case != "reply_with_list_id":
        reply = sb._conn.read(timeout=5)
        assert reply["type"] == "reply" and reply["ok"] is False, reply
    result = sb.exec("print(kept + 1)")
    assert not result.restarted, result.error
    assert result.stdout == "42\n"


def test_output_cap_is_enforced_by_the_host(make_docker_sandbox):
    """Attacks "budgets live on the host where code cannot change them", for output size:
    the cap is applied only inside the kernel, which runs in the same process as the
    cell, so a cell finds the Repl object (gc) and raises its max_output_chars; the host
    passes the 5 MB stdout on unclipped to the model. The host must clip stdout/stderr
    to limits.max_stream_chars itself (and mark them truncated)."""
    cap = 1000
    sb = make_docker_sandbox(CTX, limits=fast_limits(max_stream_chars=cap))
    result = sb.exec("import gc\nrepl = next(o for o in gc.get_objects() if type(o).__name__ == 'Repl')\n"
                     "repl.max_output_chars = 10**9\nprint('x' * 5_000_000)")
    assert len(result.stdout) <= cap + 100, f"{len(result.stdout)} chars came back with a cap of {cap}"
    assert result.stdout_truncated


# == 14. host memory: whatever the kernel sends ============================================

def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class RssPeak:
    """Peak growth of this process's resident memory inside the block, in MiB, sampled
    every 2 ms (ru_maxrss is the lifetime peak, which earlier tests may have raised)."""

    def __enter__(self) -> "RssPeak":
        import threading

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so growth is real growth
        self.baseline = self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())

    @property
    def growth(self) -> float:
        return self.peak - self.baseline


class UndefendedConnection(KernelConnection):
    """The host's connection without its memory defences (the control arm): every notice
    kept whole, every line parsed whatever it holds, every call read and queued."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notices = []  # type: ignore[assignment]  # unbounded, unlike the real one: the control arm

    def _notice(self, message: dict[str, Any]) -> None:
        self.notices.append(message)

    def _check_line(self, line: bytes) -> None:
        self._last_cost = 0

    def _calls_full(self) -> bool:
        return False


class UndefendedSandbox(DockerSandbox):
    connection_class = UndefendedConnection


#: Small messages keep these tests quick: every line from the kernel is at most
#: message_cap(4 MiB) = 5 MiB, and the documented bound is 12 such lines + 1 MiB = 61 MiB.
MEMORY_LIMITS = {"max_value_bytes": 4 << 20}
MEMORY_BOUND_MIB = host_memory_bound(MEMORY_LIMITS["max_value_bytes"]) / 2**20
PAYLOAD = 4_000_000

#: The kernel's own frame writer, found the way hostile code would: it caps nothing.
KERNEL_WRITER = r'''
import gc, threading
server = next(o for o in gc.get_objects() if type(o).__name__ == "KernelServer")
send = server._writer.send
'''

#: What a cell sends, N times, straight at the host (``i`` counts), and N.
FLOODS_TO_HOST = {
    "idless_replies": ("send({'type': 'reply', 'id': None, 'ok': False, "
                       "'error': {'type': 'Flood', 'message': 'x' * PAYLOAD}})", 64),
    "unknown_types": ("send({'type': 'flood', 'id': i, 'data': 'x' * PAYLOAD})", 64),
    "stale_replies": ("send({'type': 'reply', 'id': 10**6 + i, 'ok': True, 'stdout': 'x' * PAYLOAD})", 64),
    "dense_values": ("send({'type': 'reply', 'id': None, 'v': [[]] * (PAYLOAD // 3)})", 8),
    "non_ascii_text": ("send({'type': 'reply', 'id': None, 'v': '\\U0001F600' + 'x' * PAYLOAD})", 16),
}


def _flood_code(flood: str, count: int | None = None) -> str:
    expression, default = FLOODS_TO_HOST[flood]
    return KERNEL_WRITER + (f"PAYLOAD = {PAYLOAD}\nfor i in range({count or default}):\n    {expression}\n"
                            "print('sent')\n")


@pytest.mark.parametrize("flood", sorted(FLOODS_TO_HOST))
def test_kernel_flooding_the_host_cannot_grow_its_memory(make_docker_sandbox, flood):
    """Attacks "host memory per sandbox is bounded whatever the kernel sends": a cell finds
    the kernel's frame writer (gc) and sends 64 id-less replies of 4 MB each (the host used
    to keep every one, whole, in ``notices``), 64 messages of an unknown type, 64 replies to
    requests nobody made, lines packed with tiny values ([[], [], ...]: 4 MB that parse
    into 100+ MB), or text that Python stores at 4 bytes a character (one emoji in it). The host's
    resident memory grows by less than the documented bound
    (host_memory_bound: 12 message caps + 1 MiB), and sandbox and host carry on."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=60, **MEMORY_LIMITS))
    with RssPeak() as peak:
        result = sb.exec(_flood_code(flood))
    assert result.error is None and result.stdout == "sent\n", result
    assert peak.growth < MEMORY_BOUND_MIB, f"host grew by {peak.growth:.0f} MiB (bound {MEMORY_BOUND_MIB:.0f})"
    assert len(sb._conn.notices) <= 8 and all(len(n["message"]) <= 500 for n in sb._conn.notices)
    assert_still_works(sb)
    assert sb.exec("print(context)").stdout == CTX + "\n"


def test_control_without_the_defences_id_less_replies_pile_up(make_docker_sandbox):
    """Control: with the undefended connection, 32 id-less replies of 4 MB are all kept:
    the notices hold 128 MB, and the host grows past the bound."""
    sb = make_docker_sandbox(CTX, sandbox_class=UndefendedSandbox,
                             limits=fast_limits(cell_timeout_s=60, **MEMORY_LIMITS))
    with RssPeak() as peak:
        result = sb.exec(_flood_code("idless_replies", 32))
    assert result.stdout == "sent\n", result
    held = sum(len(notice["error"]["message"]) for notice in sb._conn.notices) / 2**20
    assert held > MEMORY_BOUND_MIB, f"the notices held {held:.0f} MiB"
    assert peak.growth > MEMORY_BOUND_MIB, f"host grew by only {peak.growth:.0f} MiB"


def test_control_without_the_defences_one_dense_line_costs_the_host_100_mib(make_docker_sandbox):
    """Control: with the undefended connection, parsing one 4 MB line of [[], [], ...]
    allocates more than the bound on the host. (Measured with tracemalloc: RSS cannot show
    it reliably once earlier tests left free room in Python's small-object arenas.)"""
    import tracemalloc

    sb = make_docker_sandbox(CTX, sandbox_class=UndefendedSandbox,
                             limits=fast_limits(cell_timeout_s=60, **MEMORY_LIMITS))
    tracemalloc.start()
    try:
        result = sb.exec(_flood_code("dense_values", 1))
        allocated = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert result.stdout == "sent\n", result
    assert allocated > MEMORY_BOUND_MIB, f"parsing allocated only {allocated:.0f} MiB"


CALL_FLOOD = KERNEL_WRITER + r'''
def flood():
    for i in range(N):
        send({"type": "call", "id": f"f{i}", "name": "hold", "args": ["x" * (1 << 20)], "kwargs": {}})
sender = threading.Thread(target=flood)
sender.start()
sender.join()
print("sent")
'''


def _call_flood(make_docker_sandbox: Callable[..., Any], sandbox_class: type[DockerSandbox],
                calls: int, *, hold_until_queued: bool = False) -> tuple[Any, RssPeak, list[int], int]:
    """Run CALL_FLOOD; returns the sandbox, the host's memory growth, the calls served, and
    the most calls that ever sat in the callback pool's queue (each holding its arguments).

    With ``hold_until_queued`` (the control), the host function does not return until more
    calls than the bound has MiB are queued (or 30 s pass), so the control shows the queue's
    growth however fast or slow this machine reads the flood."""
    import threading

    served: list[int] = []
    released = threading.Event()
    if not hold_until_queued:
        released.set()

    def hold(text: str) -> int:
        released.wait(60)
        time.sleep(0.1)
        served.append(len(text))
        return len(text)

    sb = make_docker_sandbox(CTX, sandbox_class=sandbox_class, host=Host({"hold": hold}),
                             limits=fast_limits(cell_timeout_s=60, max_callback_concurrency=4, **MEMORY_LIMITS))
    queued = [0]

    def watch_queue() -> None:
        deadline = time.monotonic() + 30
        while len(served) < calls:
            pool = sb._conn._pool if sb._conn else None
            queued[0] = max(queued[0], pool._work_queue.qsize() if pool else 0)
            if queued[0] > MEMORY_BOUND_MIB or time.monotonic() > deadline:
                released.set()
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_queue, daemon=True)
    with RssPeak() as peak:
        watcher.start()
        result = sb.exec(f"N = {calls}\n" + CALL_FLOOD)
        watcher.join(60)
    assert result.error is None and result.stdout == "sent\n", result
    return sb, peak, served, queued[0]


def test_a_flood_of_host_calls_cannot_grow_the_host(make_docker_sandbox):
    """Attacks the callback pool's queue: a cell sends 200 calls of a real host function,
    1 MiB of arguments each, straight through the kernel's writer (no stub, no waiting
    for replies). The host reads calls only while those in flight hold less than one
    message cap: the rest wait unread in the socket, so host memory stays under the bound;
    every call is still served, and the sandbox carries on."""
    sb, peak, served, _ = _call_flood(make_docker_sandbox, DockerSandbox, 200)
    assert served == [1 << 20] * 200
    assert peak.growth < MEMORY_BOUND_MIB, f"host grew by {peak.growth:.0f} MiB (bound {MEMORY_BOUND_MIB:.0f})"
    assert_still_works(sb)


def test_control_an_unbounded_call_queue_grows_the_host(make_docker_sandbox):
    """Control: reading every call at once and queueing it for the pool (4 at a time,
    0.1 s each): more calls than the bound has MiB wait in the queue, 1 MiB of arguments
    each, and the host grows past the bound."""
    _, peak, _, queued = _call_flood(make_docker_sandbox, UndefendedSandbox, 200, hold_until_queued=True)
    assert queued > MEMORY_BOUND_MIB, f"at most {queued} calls of 1 MiB were queued"
    assert peak.growth > MEMORY_BOUND_MIB, f"host grew by only {peak.growth:.0f} MiB"


def test_a_huge_stderr_chunk_on_the_stdio_transport_is_read_in_pieces():
    """Attacks the stdio transport's stderr tail: a chunk header may announce up to 4 GiB
    of stderr; the host reads it in 64 KiB pieces keeping the last 8 KiB, instead of
    allocating the whole chunk, and the protocol bytes after it arrive intact."""
    import threading

    ours, theirs = socket.socketpair()
    size = 64 << 20

    def daemon() -> None:
        theirs.sendall(bytes([2, 0, 0, 0]) + size.to_bytes(4, "big"))
        for _ in range(64):
            theirs.sendall(b"e" * (1 << 20))
        theirs.sendall(bytes([1, 0, 0, 0]) + (6).to_bytes(4, "big") + b"hello\n")

    feeder = threading.Thread(target=daemon, daemon=True)
    stream = AttachedStream(ours)
    with RssPeak() as peak:
        feeder.start()
        buffer = bytearray(16)
        received = stream.recv_into(memoryview(buffer))
    feeder.join()
    assert bytes(buffer[:received]) == b"hello\n"
    assert stream.stderr_tail == b"e" * 8192
    assert peak.growth < 32, f"host grew by {peak.growth:.0f} MiB for a 64 MiB chunk"
    ours.close()
    theirs.close()


STOP_READING_THEN_CALL = KERNEL_WRITER + r'''
import time
server.calls.resolve = lambda reply: time.sleep(10**6)  # the kernel's reader stops at the first reply
for i in range(200_000):  # each refused call makes the host write a reply nobody reads
    send({"type": "call", "id": f"u{i}", "name": "no_such_function", "args": [], "kwargs": {}})
'''


def test_a_kernel_that_stops_reading_cannot_hang_the_host(make_docker_sandbox):
    """Attacks "nothing hangs": a cell stops the kernel's reader thread (it replaces the
    function the reader calls for each reply with a sleep) and then makes the host write:
    200,000 calls of a function that does not exist, each answered with an error. The
    host's socket fills and, before, its write blocked forever: no timeout could fire. A
    write that makes no progress for WRITE_STALL_S now fails, the kernel is replaced, and
    the cell ends in bounded time saying why."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=2, interrupt_grace_s=1))
    started = time.monotonic()
    result = sb.exec(STOP_READING_THEN_CALL)
    assert time.monotonic() - started < 60
    assert result.restarted and result.error is not None, result
    assert "stopped reading from the host" in result.error.message, result.error
    assert sb.exec("print(context)").stdout == CTX + "\n"


def test_a_reply_too_costly_to_parse_is_an_error_not_a_hang(make_docker_sandbox):
    """The parse-cost check refuses a line before parsing it; when that line is the reply
    the host waits for (here ``get`` of a million empty lists: 4 MB of JSON that would
    take ~80 MiB as Python objects), the caller gets ValueTooLarge at once, saying why,
    instead of waiting out the timeout; the sandbox keeps its state."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=30, **MEMORY_LIMITS))
    assert sb.exec("dense = [[]] * 1_000_000\nkept = 1").ok
    started = time.monotonic()
    with pytest.raises(ValueTooLarge, match="too many values"):
        sb.get("dense")
    assert time.monotonic() - started < 10
    assert sb.get("kept") == 1
