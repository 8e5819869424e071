"""Readiness: one bounded attempt per probe kind (TCP, HTTP, files, sockets), the kernel's
sock_diag answers, the sd_notify socket, directory watches, and the wiring of a probe into a run.

It may import ``run``, ``spawn``, the adapter's top level and the core; nothing below the
facade imports it except the facade itself.
"""
