"""The pure core: values and functions with no I/O, no clock reads and no threads.

Everything here is deterministic given its inputs, so it can be property-tested with an
injected fake clock. The adapter layer feeds it real clock readings and effects.
"""
