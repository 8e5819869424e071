"""Spawning a service and pinning who it is: Popen in a session of its own, its cgroup, the
identity (PID, start time, group, cgroup) that every later signal is checked against.

It owns the kernel's small files (``procfs``) and may import only the adapter's top level
(capabilities, clock) and the core: every other subsystem builds on it.
"""
