"""Which async library the current task runs on, without importing one that is not in use."""

from __future__ import annotations

import sys

__all__ = ["on_asyncio"]


def on_asyncio() -> bool:
    """True inside a task of a running asyncio event loop.

    Hot paths take asyncio's own primitives there, which cost a fraction of
    anyio's portable ones; everywhere else (trio) they take anyio's.
    """
    # Not imported at all means not running: asyncio is loaded only when it is used.
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
