"""The measuring side: runs inside a benchmark venv, one scenario per process.

Only the standard library, psutil and the mirakuru under test may be imported
here; ``python -m benchmarks.worker --help`` shows the command line.
"""
