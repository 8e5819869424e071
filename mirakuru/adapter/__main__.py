"""``python -m mirakuru.adapter``: print the platform fast paths in use, for bug reports."""

from mirakuru.adapter import describe_capabilities

print(describe_capabilities())
