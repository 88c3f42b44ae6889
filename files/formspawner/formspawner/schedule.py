"""How many of something run at once on the hub, the others waiting in line, in order,
told their place. Shared by every spawner in the hub:
- repository builds: at most the policy's max_concurrent_builds, each on a thread of the
  builds' own pool (never the event loop's default pool, which logins and name lookups share);
- servers starting (created, not yet answering): at most FormDockerSpawner.start_slots.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The start of the line a waiting build's log gets each time its place changes: the spawn
# page always shows it (not thinned out like other build output).
WAITING = "Waiting for a free build slot"
# The start of the progress message of a server waiting for its turn to start.
START_WAITING = "Waiting for your turn to start"


class Slots:
    """At most `limit` at once (0: no limit); the others wait in line and hear their place
    (`job.waiting(place, limit)`) each time it changes; cancelling one there leaves the line."""

    def __init__(self, limit: int):
        self.limit = limit
        self.running = 0
        # [job, its turn (a future), the place it was last told]
        self.line: collections.deque[list] = collections.deque()

    def _free(self) -> bool:
        return self.limit <= 0 or self.running < self.limit

    @contextlib.asynccontextmanager
    async def held(self, job):
        """A slot for the body's time (waiting in line for it first)."""
        await self._take(job)
        try:
            yield
        finally:
            self._give_back()

    async def _take(self, job) -> None:
        if self._free() and not self.line:
            self.running += 1
            return
        turn = asyncio.get_running_loop().create_future()
        entry = [job, turn, 0]
        self.line.append(entry)
        self._tell_places()
        try:
            await turn
        except asyncio.CancelledError:
            if entry in self.line:
                self.line.remove(entry)
                self._tell_places()
            elif turn.done() and not turn.cancelled():
                self._give_back()  # the slot came with the cancellation: pass it on
            raise

    def _give_back(self) -> None:
        self.running -= 1
        self._fill()

    def _fill(self) -> None:
        """Hand free slots to the first in line, then tell the rest their new places."""
        moved = False
        while self.line and self._free():
            _, turn, _ = self.line.popleft()
            moved = True
            if not turn.done():  # a cancelled one is on its way out of the line
                self.running += 1
                turn.set_result(None)
        if moved:
            self._tell_places()

    def _tell_places(self) -> None:
        """Each one in line whose place changed hears its new one."""
        for place, entry in enumerate(self.line, start=1):
            if entry[2] != place:
                entry[2] = place
                entry[0].waiting(place, self.limit)

    def set_limit(self, limit: int) -> None:
        """The configured limit (read at each use): a higher one lets those waiting go."""
        self.limit = limit
        self._fill()


class BuildSlots(Slots):
    def __init__(self, limit: int):
        super().__init__(limit)
        self._executor: ThreadPoolExecutor | None = None
        self._workers = 0

    def _pool(self) -> ThreadPoolExecutor:
        """The builds' threads: as many as builds may run (a new pool if the limit grew;
        the old one's threads end with their builds)."""
        if self._executor is None or self._workers < self.limit:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._executor = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="formspawner-build")
            self._workers = self.limit
        return self._executor

    async def run(self, job, function: Callable, *args) -> Any:
        """`function(*args)` on a build thread once a slot is free. While in line the job
        hears its place (`job.waiting(place, limit)`); cancelling it there leaves the line.
        A running build cannot be cancelled from here (a thread cannot be): its slot is
        free when the thread ends."""
        await self._take(job)
        job.started = True
        future = asyncio.get_running_loop().run_in_executor(self._pool(), function, *args)
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._give_back()
            else:
                future.add_done_callback(lambda _: self._give_back())


# The hub's line of builds; each build sets its limit from the policy first (set_limit).
slots = BuildSlots(limit=1)

# The hub's line of servers starting; each start sets its limit from the spawner first.
starts = Slots(limit=0)

# Pushes of built images to a swarm's registry run on threads of their own: a push of
# gigabytes must not hold the single thread DockerSpawner makes every Docker call on.
pushes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="formspawner-push")
