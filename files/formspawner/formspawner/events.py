"""An append-only event log that any number of readers follow, each from the first event.

One mechanism for a build's log (every user waiting on the same build sees all of it)
and a spawn's progress events (the spawn page may connect before the first one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class EventLog:
    def __init__(self):
        self.events: list[Any] = []
        self._changed = asyncio.Event()

    def append(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def restart(self) -> None:
        """A new list of events (a new start); readers already following keep following."""
        self.events = []
        self._changed.set()

    async def follow(self, until: asyncio.Future | None = None) -> AsyncIterator[Any]:
        """Every event, then each new one as it comes; ends once `until` is done and every
        event before that was given (never, without `until`)."""
        sent = 0
        while True:
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if until is not None and until.done():
                return
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait([waiter] if until is None else [waiter, until], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
