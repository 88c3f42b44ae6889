"""How many of something run at once on the hub, the others waiting in line, told their
place. Shared by every spawner in the hub:
- repository builds: at most the policy's max_concurrent_builds, each on a thread of the
  builds' own pool (never the event loop's default pool, which logins and name lookups share);
- servers starting (created, not yet answering): at most FormDockerSpawner.start_slots;
- blocking work of launches (helper containers, git, the cache): bounded pools of their own
  (`Workers`), each call with a deadline that counts its wait for a thread.

The line is fair between users: a free slot goes to the waiting job whose owner holds the
fewest (running, and ahead of it in line), the earliest among equals: one user's five named
servers do not take five slots while another user waits (round-robin between owners).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The start of the line a waiting build's log gets each time its place changes: the spawn
# page always shows it (not thinned out like other build output).
WAITING = "Waiting for a free build slot"
# The start of the progress message of a server waiting for its turn to start.
START_WAITING = "Waiting for your turn to start"


def owner_of(job) -> str:
    """Whose a job is (its `owner`); a job without one is its own owner."""
    return getattr(job, "owner", None) or f"#{id(job)}"


class Slots:
    """At most `limit` at once (0: no limit), and at most `per_owner` of one owner's at once
    (0: no such cap); the others wait in line and hear their place (`job.waiting(place,
    limit)`) each time it changes; cancelling one there leaves the line. Slots go round-robin
    between owners (the module's docstring)."""

    def __init__(self, limit: int, per_owner: int = 0):
        self.limit = limit
        self.per_owner = per_owner
        self.running = 0
        self.held_by: collections.Counter[str] = collections.Counter()
        # [job, its turn (a future), the place it was last told]
        self.line: collections.deque[list] = collections.deque()

    def _free(self) -> bool:
        return self.limit <= 0 or self.running < self.limit

    def _order(self, just_had_a_turn: str | None = None) -> list[list]:
        """The line in the order it is served: by how many its owner holds and has ahead of
        it in line (counting the slot an owner has just given back, so that the turn goes
        round), then by arrival."""
        ahead: collections.Counter[str] = collections.Counter()
        keyed = []
        for position, entry in enumerate(self.line):
            owner = owner_of(entry[0])
            held = self.held_by[owner] + (owner == just_had_a_turn)
            keyed.append((held + ahead[owner], position, entry))
            ahead[owner] += 1
        return [entry for *_, entry in sorted(keyed, key=lambda item: item[:2])]

    def _may_run(self, job) -> bool:
        return self.per_owner <= 0 or self.held_by[owner_of(job)] < self.per_owner

    @contextlib.asynccontextmanager
    async def held(self, job):
        """A slot for the body's time (waiting in line for it first)."""
        await self._take(job)
        try:
            yield
        finally:
            self._give_back(job)

    async def _take(self, job) -> None:
        turn = asyncio.get_running_loop().create_future()
        entry = [job, turn, 0]
        self.line.append(entry)
        self._fill()  # a free slot this job may take goes to it at once, ahead of capped owners
        if turn.done():
            return
        self._tell_places()
        try:
            await turn
        except asyncio.CancelledError:
            if entry in self.line:
                self.line.remove(entry)
                self._tell_places()
            elif turn.done() and not turn.cancelled():
                self._give_back(job)  # the slot came with the cancellation: pass it on
            raise

    def _hold(self, job) -> None:
        self.running += 1
        self.held_by[owner_of(job)] += 1

    def _give_back(self, job) -> None:
        self.running -= 1
        owner = owner_of(job)
        self.held_by[owner] -= 1
        if self.held_by[owner] <= 0:
            del self.held_by[owner]
        self._fill(just_had_a_turn=owner)

    def _fill(self, just_had_a_turn: str | None = None) -> None:
        """Hand free slots to the next in the line's order, then tell the rest their places."""
        moved = False
        while self.line and self._free():
            order = self._order(just_had_a_turn)
            entry = next((entry for entry in order if self._may_run(entry[0])), None)
            if entry is None:
                break  # every one waiting belongs to an owner at their cap
            self.line.remove(entry)
            job, turn, _ = entry
            moved = True
            if not turn.done():  # a cancelled one is on its way out of the line
                self._hold(job)
                turn.set_result(None)
        if moved:
            self._tell_places()

    def _tell_places(self) -> None:
        """Each one in line whose place changed hears its new one."""
        for place, entry in enumerate(self._order(), start=1):
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
                self._give_back(job)
            else:
                future.add_done_callback(lambda _: self._give_back(job))


# The hub's line of builds; each build sets its limit from the policy first (set_limit).
slots = BuildSlots(limit=1)

# The hub's line of servers starting; each start sets its limit from the spawner first.
starts = Slots(limit=0)

# Pushes of built images to a swarm's registry run on threads of their own: a push of
# gigabytes must not hold the single thread DockerSpawner makes every Docker call on.
pushes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="formspawner-push")


class Busy(Exception):
    """A call's deadline passed while it waited for one of the pool's threads."""


class _Call:
    def __init__(self, owner: str):
        self.owner = owner

    def waiting(self, place: int, limit: int) -> None:
        pass


class Workers(Slots):
    """A pool of `threads` threads for blocking calls of launches, never the event loop's
    default pool (tornado resolves names there, and a login through OAuth waits on it). At
    most `per_owner` calls of one user run at once. A call waits for a thread at most until
    its deadline (then `Busy`); the function itself gets the deadline (a time.monotonic()
    value) as its first argument and must return by then: a thread cannot be stopped from
    outside, so a function that can block (a container, a subprocess) kills what it waits
    for at the deadline. The thread stays taken until the function returns."""

    def __init__(self, name: str, threads: int, per_owner: int):
        super().__init__(threads, per_owner)
        self.name = name
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"formspawner-{name}")

    async def run(self, owner: str, seconds: float, function: Callable, *args) -> Any:
        """`function(deadline, *args)` on one of the pool's threads, `seconds` from now at most."""
        deadline = time.monotonic() + seconds
        call = _Call(owner)
        try:
            await asyncio.wait_for(self._take(call), seconds)
        except TimeoutError:
            raise Busy(f"the hub's {self.name} threads stayed busy for {seconds:.0f} s") from None
        try:
            future = asyncio.get_running_loop().run_in_executor(self.executor, function, deadline, *args)
        except BaseException:
            self._give_back(call)
            raise
        future.add_done_callback(lambda _: self._give_back(call))
        return await asyncio.shield(future)


# Pulls of images (a user's first start of an image not pre-pulled: the images role pulls
# every curated one beforehand) on threads of their own, not DockerSpawner's single one that
# makes every Docker call. docker-py reads a pull's progress with no timeout: a registry that
# stops answering holds one of these threads (the start itself ends at start_timeout), never
# the Docker calls of other users.
pulls = ThreadPoolExecutor(max_workers=2, thread_name_prefix="formspawner-pull")

# Short containers of launches (the merge, the whole-home move, the image probe): few at
# once (each is a container on the host), one per user at a time.
helpers = Workers("helper", threads=4, per_owner=1)
# git and the hub's own copies and cache (resolve, fetch, record, eviction): subprocesses
# and Docker calls with their own timeouts; two per user at a time.
launch_io = Workers("launch", threads=4, per_owner=2)
