"""The async driver: awaiting a run's events on an anyio event loop (asyncio or trio).

Imported only by the ``a*`` methods, never by ``import mirakuru``: anyio is an optional
dependency (``pip install 'mirakuru[async]'``).
"""
