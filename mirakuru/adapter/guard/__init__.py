"""The guard: services never outlive their owner, through this process's registry of running
executors (killed at exit) and a watchdog process that kills them if the owner dies.

It may import ``spawn``, the adapter's top level and the core; the watchdog program itself
(``watchdog_main``) imports nothing from the package, so it runs with ``python -I -S``.
"""
