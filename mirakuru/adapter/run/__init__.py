"""One run of a service from spawn to reap: the :class:`~mirakuru.adapter.run.run.Run`, the
process-wide reactor thread that serves its descriptors, the output pump and the waiter loop.

It may import ``spawn``, the adapter's top level and the core; readiness, teardown and the
guard build on it, never the other way round.
"""
