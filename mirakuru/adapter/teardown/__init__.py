"""Teardown: the stop and kill sequences of one service, finding its whole tree without ever
signalling a stranger, and the stragglers left after the leader is gone.

It may import ``run``, ``spawn``, the adapter's top level and the core; it never imports
readiness or the guard.
"""
