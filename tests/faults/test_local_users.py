"""Another local user against our services: forged readiness, floods, planted paths, tokens.

The tests that need another user run as root, so that a helper process can drop to
``nobody``; as anyone else they are skipped. The hostile processes are children of the
test, never of the service, so they stand for any process on the machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirakuru import Executor, SimpleExecutor, probes
from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.paths import UnsafeDirectory
from mirakuru.adapter.readiness.notify import MAX_DATAGRAM, STATUSES_KEPT, NotifySocket
from mirakuru.adapter.spawn import identity
from mirakuru.core.lifecycle import State
from mirakuru.ports import free_port, run_reservations
from tests.faults.programs import REPO
from tests.helpers import wait_until

#: Safety bound for every wait; never a timing target.
BOUND = 20.0


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


NOBODY = _nobody()
#: For the tests that act as another user: root drops to ``nobody`` in a helper process.
as_another_user = pytest.mark.skipif(
    os.geteuid() != 0 or NOBODY is None, reason="needs root (and a nobody user) to act as another"
)

#: Sends datagrams to the notify address argv[1] as uid argv[2] ("-": stay as we are), prints
#: "sent" and stays alive until its standard input closes (so its PID can still be checked).
SENDER = r"""
import os, socket, sys
address, uid, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if uid != "-":
    os.setgroups([])
    os.setgid(int(sys.argv[5]))
    os.setuid(int(uid))
if address.startswith("@"):
    address = "\0" + address[1:]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    for number in range(count):
        body = f"STATUS=pwned {number} ".encode()
        sock.sendto(body + b"x" * max(0, size - len(body)), address)
    sock.sendto(b"READY=1\nSTATUS=pwned ready", address)
print("sent", flush=True)
sys.stdin.read()
"""

#: Waits for the go file argv[1], then reports ready the way argv[2] says.
SERVICE = r"""
import os, socket, subprocess, sys, time
go, how = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.002)
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
if how == "child":  # as systemd-notify does: a short-lived child sends and exits
    subprocess.run([sys.executable, "-c", (
        "import os, socket\n"
        "address = os.environ['NOTIFY_SOCKET'].replace('@', chr(0), 1)\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.sendto(b'STATUS=from a child\\nREADY=1', address)\n"
    )], check=True)
else:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if how == "flood":
            for number in range(1000):
                sock.sendto(f"STATUS=step {number} ".encode() + b"." * 3000, address)
            sock.sendto(b"STATUS=" + b"y" * (2 * 4096), address)
        sock.sendto(b"STATUS=real\nREADY=1", address)
time.sleep(60)
"""


def sender(address: str, as_user: bool, count: int = 0, size: int = 0) -> subprocess.Popen[str]:
    """A process outside the service (of ``nobody`` or of ours) that forges datagrams."""
    assert NOBODY is not None
    who = [str(NOBODY.pw_uid), str(NOBODY.pw_gid)] if as_user else ["-"]
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, address, who[0], str(count), str(size), *who[1:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def go(tmp_path: Path) -> str:
    """The file that lets the service report ready."""
    return os.path.join(tmp_path, "go")


def notify_executor(go: str, how: str = "plain") -> Executor:
    return Executor(
        [sys.executable, "-c", SERVICE, go, how], ready=probes.sd_notify(), timeout=BOUND
    )


def forge_while_starting(
    executor: Executor, go: str, as_user: bool, count: int = 0
) -> tuple[threading.Thread, dict[str, object]]:
    """A thread that forges datagrams once the start waits, then lets the service go on."""
    seen: dict[str, object] = {}

    def forge() -> None:
        try:
            assert wait_until(lambda: executor._wiring.notify is not None, BOUND)
            notify = executor._wiring.notify
            assert notify is not None
            forger = sender(notify.address, as_user, count, 4000)
            try:
                assert forger.stdout is not None
                seen["sent"] = forger.stdout.readline().strip()
                # Refused while the forger is still alive to be looked at.
                seen["refused"] = wait_until(
                    lambda: getattr(notify, "refused", 0) >= count + 1, BOUND / 4
                )
            finally:
                assert forger.stdin is not None
                forger.stdin.close()
                forger.wait(BOUND)
                assert forger.stdout is not None
                forger.stdout.close()
        finally:
            seen["ready_before_go"] = executor.state is State.RUNNING
            with open(go, "w"):
                pass

    thread = threading.Thread(target=forge, daemon=True)
    thread.start()
    return thread, seen


def statuses(executor: Executor) -> list[str]:
    return [
        change.detail or ""
        for change in executor.history
        if (change.detail or "").startswith("STATUS=")
    ]


def notes(executor: Executor) -> list[str]:
    return [change.detail or "" for change in executor.history]


#: Why the other-user sends cannot be made where the notify socket is a file.
_PRIVATE_SOCKET = (
    "needs abstract unix sockets and SO_PASSCRED (Linux): elsewhere the notify socket is a"
    " file in a 0700 directory, which another user cannot send to at all and a process of"
    " our own uid is not told apart at"
)


class TestForgedReadiness:
    """Only the service (its tree, its session, its cgroup) may report it ready."""

    @pytest.mark.parametrize(
        "as_user",
        [
            pytest.param(True, id="other-user", marks=as_another_user),
            pytest.param(False, id="same-uid-stranger"),
        ],
    )
    def test_a_stranger_cannot_report_ready(self, go: str, as_user: bool) -> None:
        """READY=1 and STATUS= from outside the service are refused, logged and counted."""
        if not capabilities().abstract_socket:
            pytest.skip(_PRIVATE_SOCKET)
        executor = notify_executor(go)
        thread, seen = forge_while_starting(executor, go, as_user)
        try:
            executor.start()
            assert os.path.exists(go), "ready before the service said so"
        finally:
            thread.join(BOUND)
            executor.stop()
        assert seen["sent"] == "sent"
        assert seen["ready_before_go"] is False
        assert seen["refused"] is True
        assert statuses(executor) == ["STATUS=real"]
        assert any("1 datagrams from outside the service refused" in n for n in notes(executor))

    def test_a_child_of_the_service_may_report(self, go: str) -> None:
        """A short-lived child of the service (as systemd-notify is) is the service's."""
        with open(go, "w"):
            pass
        with notify_executor(go, "child") as executor:
            assert executor.state is State.RUNNING
        assert statuses(executor) == ["STATUS=from a child"]

    @as_another_user
    def test_a_private_socket_file_is_out_of_reach(self) -> None:
        """Without the abstract namespace the socket is a file in a 0700 directory."""
        notify = NotifySocket(abstract=False)
        try:
            assert os.stat(os.path.dirname(notify.address)).st_mode & 0o777 == 0o700
            forger = sender(notify.address, as_user=True)
            out, _ = forger.communicate(timeout=BOUND)
            assert forger.returncode != 0
            assert "sent" not in out
            notify.on_readable()
            assert not notify.ready
        finally:
            notify.close()


class TestNotifyCosts:
    """What the notify socket may cost is bounded, whoever sends."""

    def test_status_flood_from_the_service(self, go: str) -> None:
        """A thousand STATUS lines keep the last hundred; an oversized datagram is dropped."""
        with open(go, "w"):
            pass
        with notify_executor(go, "flood") as executor:
            pass
        kept = statuses(executor)
        assert len(kept) == STATUSES_KEPT
        assert kept[-1] == "STATUS=real"
        assert kept[0].startswith("STATUS=step 901 ")
        summary = [n for n in notes(executor) if n.startswith("sd_notify:")]
        assert summary == [
            f"sd_notify: 1001 STATUS messages, the history keeps the last {STATUSES_KEPT};"
            f" 1 datagrams over {MAX_DATAGRAM} bytes dropped"
        ]

    @as_another_user
    def test_flood_from_another_user_costs_nothing(self, go: str) -> None:
        """Five hundred 4 KB datagrams from another user leave nothing in the history."""
        if not capabilities().abstract_socket:
            pytest.skip(_PRIVATE_SOCKET)
        executor = notify_executor(go)
        thread, seen = forge_while_starting(executor, go, as_user=True, count=500)
        try:
            executor.start()
        finally:
            thread.join(BOUND)
            executor.stop()
        assert seen["refused"] is True
        assert statuses(executor) == ["STATUS=real"]
        assert any("501 datagrams from outside the service refused" in n for n in notes(executor))


#: Starts a service, then a process of ``nobody`` carrying a copy of its token; prints
#: "<service pid> <thief pid> <watchdog pid>", then ends as argv[1] says.
MARKER_THIEF = r"""
import os, pwd, subprocess, sys
from mirakuru import SimpleExecutor
from mirakuru.adapter.guard import watchdog

nobody = pwd.getpwnam("nobody")
service = SimpleExecutor(["sleep", "60"]).start()
thief = subprocess.Popen(
    ["sleep", "60"],
    user=nobody.pw_uid,
    group=nobody.pw_gid,
    extra_groups=[],
    env={"PATH": os.environ["PATH"], "mirakuru_uuid": service._uuid},
    start_new_session=True,
)
print(service.process.pid, thief.pid, watchdog.watchdog_pid() or 0, flush=True)
if sys.argv[1] == "stop":
    service.stop()
    print("stopped", service.state.value, flush=True)
elif sys.argv[1] == "killed":
    sys.stdin.read()  # until the test kills this process with SIGKILL
# "exit": leave with the service running; the exit hook stops it
"""


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class TestCopiedToken:
    """A process of another user carrying our token is never signalled by us."""

    @as_another_user
    @pytest.mark.parametrize("ending", ["exit", "stop", "killed"])
    def test_the_thief_survives(self, ending: str) -> None:
        """Exit hook, stop() and the watchdog kill our service and spare the stranger."""
        if ending == "killed" and not capabilities().pidfd:
            pytest.skip("needs pidfds (Linux): the watchdog kills only the processes it pinned")
        import signal

        driver = subprocess.Popen(
            [sys.executable, "-c", MARKER_THIEF, ending],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": REPO},
        )
        thief = 0
        try:
            assert driver.stdout is not None
            service, thief, guard = (int(word) for word in driver.stdout.readline().split())
            if ending == "stop":
                assert driver.stdout.readline().split() == ["stopped", "stopped"]
            if ending == "killed":
                driver.kill()
            else:
                assert driver.stdin is not None
                driver.stdin.close()
            driver.wait(BOUND)
            assert wait_until(lambda: not _alive(service), BOUND)
            if ending == "killed":
                assert guard, "no watchdog to test"
                assert wait_until(lambda: not _alive(guard), BOUND)  # it has done its work
            assert _alive(thief)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait(BOUND)
            for pipe in (driver.stdin, driver.stdout):
                if pipe is not None:
                    pipe.close()
            if thief:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(thief, signal.SIGKILL)

    @pytest.mark.skipif(not capabilities().cgroup, reason="needs a writable cgroup v2")
    def test_cgroup_names_do_not_show_the_token(self) -> None:
        """The service's cgroup, readable by anyone, is not named after its token."""
        with SimpleExecutor(["sleep", "60"]) as executor:
            assert executor.process is not None
            pinned = identity.of(executor.process)
            assert pinned is not None
            assert pinned.group is not None
            assert pinned.group.settle(BOUND)  # the move lands off start()'s path
            with open(f"/proc/{executor.process.pid}/cgroup") as table:
                membership = table.read()
            assert "mirakuru-" in membership
            assert executor._uuid.split(":", 1)[1] not in membership


#: Runs argv[1] (Python source) as ``nobody``; the other arguments are its own.
AS_NOBODY = r"""
import os, pwd, sys
nobody = pwd.getpwnam("nobody")
os.setgroups([])
os.setgid(nobody.pw_gid)
os.setuid(nobody.pw_uid)
exec(sys.argv.pop(1))  # with sys.argv[1:] its own arguments
"""


def as_nobody(source: str, *args: str) -> None:
    """Run ``source`` as another user (``nobody``), bounded; it must succeed."""
    subprocess.run([sys.executable, "-c", AS_NOBODY, source, *args], check=True, timeout=BOUND)


@pytest.fixture
def sticky() -> Iterator[Path]:
    """A world-writable sticky directory in /tmp, as /tmp itself is: anyone may plant names."""
    path = Path(tempfile.mkdtemp(prefix="mirakuru-sticky-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Where a planted symlink points: a directory only we may write to."""
    path = tmp_path / "victim"
    path.mkdir(mode=0o755)
    return path


def plant_symlink(link: Path, target: Path) -> None:
    as_nobody("import os, sys\nos.symlink(sys.argv[1], sys.argv[2])", str(target), str(link))


class TestSharedPlaces:
    """Directories we make where others can write are private, and what is found is checked."""

    @as_another_user
    def test_a_planted_symlink_is_refused(self, sticky: Path, victim: Path) -> None:
        """A symlink another user planted where the reservations go is never followed."""
        plant_symlink(sticky / "mirakuru-ports", victim)
        with pytest.raises(UnsafeDirectory, match="symbolic link"):
            free_port(sticky / "mirakuru-ports")
        assert list(victim.iterdir()) == []

    @as_another_user
    def test_a_planted_parent_symlink_is_refused(self, sticky: Path, victim: Path) -> None:
        """A symlink of another user on the way is refused too, before anything is made."""
        plant_symlink(sticky / "run", victim)
        with pytest.raises(UnsafeDirectory, match="another user"):
            free_port(sticky / "run" / "mirakuru-ports")
        assert list(victim.iterdir()) == []

    @as_another_user
    def test_another_users_directory_is_refused(self, sticky: Path) -> None:
        """A directory another user made under our name is theirs: refused."""
        as_nobody("import os, sys\nos.mkdir(sys.argv[1], 0o777)", str(sticky / "mirakuru-ports"))
        with pytest.raises(UnsafeDirectory, match="belongs to uid"):
            free_port(sticky / "mirakuru-ports")

    def test_a_world_writable_directory_is_refused(self, sticky: Path) -> None:
        """Our own directory that anyone may write to could hold anything: refused."""
        (sticky / "ports").mkdir()
        (sticky / "ports").chmod(0o777)
        with pytest.raises(UnsafeDirectory, match="writable by other users"):
            free_port(sticky / "ports")

    def test_made_private(self, sticky: Path) -> None:
        """Missing directories are made 0700, ours, and the claim files 0600."""
        port = free_port(sticky / "run" / "mirakuru-ports")
        for directory in (sticky / "run", sticky / "run" / "mirakuru-ports"):
            info = directory.lstat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o700)
        assert stat.S_IMODE((sticky / "run" / "mirakuru-ports" / str(port)).stat().st_mode) == 0o600

    def test_an_inherited_worker_variable_keeps_out_of_tmp(
        self, sticky: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With PYTEST_XDIST_WORKER inherited and the basetemp in a shared place, the
        run's root is the basetemp, not the shared place above it."""
        basetemp = sticky / "basetemp"
        basetemp.mkdir(mode=0o700)
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")

        class Factory:
            def getbasetemp(self) -> Path:
                return basetemp

        assert run_reservations(Factory()) == basetemp / "mirakuru-ports"

    @as_another_user
    def test_a_service_fixture_under_an_inherited_worker_variable(
        self, pytester: pytest.Pytester, sticky: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The reported attack: a root run with ``--basetemp`` in /tmp and the variable
        inherited creates nothing where another user's symlink points."""
        plant_symlink(sticky / "mirakuru-ports", victim)
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        pytester.makeconftest(
            """
            import sys
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            LISTEN = (
                "import socket, sys, time\\n"
                "server = socket.create_server(('127.0.0.1', int(sys.argv[1])))\\n"
                "time.sleep(60)\\n"
            )
            svc = service_fixture(
                [sys.executable, "-c", LISTEN, "{port}"],
                ready=lambda port: probes.tcp("127.0.0.1", port),
            )
            """
        )
        pytester.makepyfile("def test_uses(svc):\n    assert svc.running()\n")
        result = pytester.runpytest_subprocess(f"--basetemp={sticky / 'basetemp'}")
        result.assert_outcomes(passed=1)
        assert list(victim.iterdir()) == []
