"""Benchmark suite comparing this checkout of mirakuru with the published release.

Run ``python -m benchmarks --help`` from the repository root.  The harness itself
uses only the standard library; the measurements happen in worker processes
(:mod:`benchmarks.worker`) run by the interpreters of two cached virtual
environments, so that each implementation is imported from its installed copy.
"""
