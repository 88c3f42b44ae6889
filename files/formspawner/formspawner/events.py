"""An append-only event log that any number of readers follow, each from the first event
it still holds.

One mechanism for a build's log (every user waiting on the same build sees all of it)
and a spawn's progress events (the spawn page may connect before the first one).

With `maxlen`, the log keeps only the newest events (a build may print without end): a
reader that falls behind is told how many it missed (`gap`) and goes on from the oldest
kept. Readers give the event loop a turn every `BATCH` events, so a long backlog never
holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

BATCH = 64


class EventLog:
    def __init__(self, maxlen: int | None = None):
        self.maxlen = maxlen
        self.events: list[Any] = []
        self.dropped = 0  # events no longer held, oldest first
        self._changed = asyncio.Event()

    def append(self, event: Any) -> None:
        self.events.append(event)
        # Trimmed in chunks: amortised O(1), at most twice maxlen held.
        if self.maxlen is not None and len(self.events) >= 2 * self.maxlen:
            cut = len(self.events) - self.maxlen
            del self.events[:cut]
            self.dropped += cut
        self._changed.set()

    def restart(self) -> None:
        """A new list of events (a new start); readers already following keep following."""
        self.dropped += len(self.events)
        self.events = []
        self._changed.set()

    async def follow(
        self, until: asyncio.Future | None = None, gap: Callable[[int], Any] | None = None
    ) -> AsyncIterator[Any]:
        """Every event held, then each new one as it comes; ends once `until` is done and
        every event before that was given (never, without `until`). Events dropped before
        this reader got them are reported as `gap(count)` when `gap` is given."""
        sent = self.dropped  # absolute index of the next event to give
        given = 0
        while True:
            while sent < self.dropped + len(self.events):
                if sent < self.dropped:
                    if gap is not None:
                        yield gap(self.dropped - sent)
                    sent = self.dropped
                    continue
                yield self.events[sent - self.dropped]
                sent += 1
                given += 1
                if given % BATCH == 0:
                    await asyncio.sleep(0)
            if until is not None and until.done():
                return
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait([waiter] if until is None else [waiter, until], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
