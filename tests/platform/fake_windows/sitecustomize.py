"""Make this interpreter look like Windows to mirakuru: no POSIX-only names, sys.platform win32.

The standard library keeps its real (Linux) state, imported before the platform is faked,
since on real Windows it has its own working branches; only mirakuru's use of POSIX-only
names at import time is exercised.
"""

import contextlib
import importlib
import os
import platform
import select
import signal
import socket
import sys

for _name in (
    "asyncio",
    "concurrent.futures",
    "ctypes",
    "ctypes.util",
    "http.client",
    "logging",
    "multiprocessing",
    "selectors",
    "shutil",
    "subprocess",
    "tempfile",
    "threading",
    "urllib.request",
    "uuid",
    "psutil",
    "attrs",
    "transitions",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)

# platform caches what it learns; on Windows it has its own sources, here it needs os.uname.
platform.uname()

_POSIX_ONLY = {
    signal: (
        "SIGKILL SIGCHLD SIGHUP SIGQUIT SIGUSR1 SIGUSR2 SIGALRM SIGSTOP SIGCONT SIGPIPE "
        "SIGTSTP SIGTTIN SIGTTOU SIGWINCH pidfd_send_signal pthread_sigmask pthread_kill "
        "setitimer siginterrupt SIG_BLOCK SIG_UNBLOCK SIG_SETMASK sigwait sigtimedwait alarm pause"
    ),
    os: (
        "killpg setsid getpgid getpgrp setpgid getsid fork forkpty pidfd_open waitid wait3 "
        "wait4 WNOHANG WNOWAIT WEXITED WEXITSTATUS WIFEXITED WIFSIGNALED WTERMSIG P_PID P_PIDFD "
        "getuid geteuid getgid O_CLOEXEC O_NONBLOCK sched_getaffinity "
        "register_at_fork pipe2 mkfifo sysconf statvfs fchmod chown"
    ),
    select: "poll epoll POLLIN POLLOUT POLLHUP POLLERR POLLNVAL POLLPRI EPOLLIN kqueue kevent",
    socket: "AF_NETLINK SO_PEERCRED SOCK_CLOEXEC SOCK_NONBLOCK SCM_RIGHTS SO_REUSEPORT",
}
for _module, _names in _POSIX_ONLY.items():
    for _attr in _names.split():
        if hasattr(_module, _attr):
            delattr(_module, _attr)
for _blocked in ("fcntl", "termios", "pty", "resource", "pwd", "grp", "tty"):
    sys.modules[_blocked] = None  # type: ignore[assignment]
sys.platform = "win32"
