"""`BoundedCache`: at most a fixed number of values by key, the oldest going first.

Every object loopbp keeps between calls for reuse (engines, workspaces) is kept in one of
these, so that a program that tries many shapes holds only the last few.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class BoundedCache:
    """At most `size` values by key; adding one to a full cache drops the oldest added.

    `get`, `pop` and `put` are each a few dict operations, which the GIL keeps whole:
    threads may share a cache without a lock, though two may then make the same value at
    once (`get_or_make`), which callers that need one value per key prevent with a lock.

    Parameters
    ----------
    size : int
        The most values kept, at least 1.

    Attributes
    ----------
    kept : dict
        The values kept, oldest first.
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size!r}")
        self.size = size
        self.kept: dict = {}

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value kept for `key`, or `default`."""
        return self.kept.get(key, default)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Take the value kept for `key` out of the cache, or return `default`."""
        return self.kept.pop(key, default)

    def put(self, key: Hashable, value: Any) -> Any:
        """Keep `value` for `key`, dropping the oldest values beyond `size`; returns `value`."""
        self.kept.pop(key, None)
        while len(self.kept) >= self.size:
            try:
                self.kept.pop(next(iter(self.kept)), None)
            except (StopIteration, RuntimeError):  # another thread emptied or changed it
                break
        self.kept[key] = value
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value kept for `key`, or ``make()``, kept."""
        value = self.kept.get(key)
        return self.put(key, make()) if value is None else value
