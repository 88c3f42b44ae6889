"""formspawner.schedule: at most `limit` builds at once, on the builds' own threads; the
others wait in order and hear their place; a build leaving the line (its launch stopped)
moves the others up. The real hub shows the same with real builds in
tests/integration/test_repo_launches.py (test_builds_wait_in_line_one_per_user_and_stop_unwatched)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest

from formspawner.schedule import BuildSlots, Slots


class Job:
    def __init__(self, name):
        self.name = name
        self.places = []
        self.started = False

    def waiting(self, place, limit):
        self.places.append((place, limit))


def blocking(gate: threading.Event, ran: list, name: str):
    """A build stand-in: records its thread, then blocks until the test opens its gate."""
    ran.append((name, threading.current_thread().name))
    assert gate.wait(10), f"{name} was never let finish"
    return name


async def until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def one_running_two_in_line():
    """One slot: build a runs (until the gate opens), b and c wait in line."""
    slots = BuildSlots(limit=1)
    ran, gate = [], threading.Event()
    jobs = {name: Job(name) for name in "abc"}
    tasks = {name: asyncio.ensure_future(slots.run(jobs[name], blocking, gate, ran, name)) for name in "abc"}
    await until(lambda: len(ran) == 1 and len(slots.line) == 2)
    return slots, ran, gate, jobs, tasks


def test_builds_beyond_the_limit_wait_in_order_and_hear_their_place():
    async def scenario():
        slots = BuildSlots(limit=1)
        ran, gates = [], {name: threading.Event() for name in "abc"}
        jobs = {name: Job(name) for name in "abc"}
        tasks = {}
        for name in "abc":
            tasks[name] = asyncio.ensure_future(slots.run(jobs[name], blocking, gates[name], ran, name))
            await asyncio.sleep(0)
        await until(lambda: len(ran) == 1)
        assert [name for name, _ in ran] == ["a"] and slots.running == 1
        assert jobs["a"].started and not jobs["b"].started and not jobs["c"].started
        assert jobs["a"].places == [] and jobs["b"].places == [(1, 1)] and jobs["c"].places[-1] == (2, 1)
        gates["a"].set()
        assert await tasks["a"] == "a"
        await until(lambda: len(ran) == 2)
        assert ran[1][0] == "b" and jobs["c"].places[-1] == (1, 1)
        gates["b"].set()
        gates["c"].set()
        assert await tasks["b"] == "b" and await tasks["c"] == "c"
        assert slots.running == 0 and not slots.line
        # Every build ran on a thread of the builds' pool, not the event loop's default one.
        assert all(thread.startswith("formspawner-build") for _, thread in ran), ran

    asyncio.run(scenario())


def test_a_build_cancelled_in_line_leaves_it_and_the_others_move_up():
    async def scenario():
        slots, ran, gate, jobs, tasks = await one_running_two_in_line()
        assert jobs["c"].places[-1] == (2, 1)
        tasks["b"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks["b"]
        assert [entry[0].name for entry in slots.line] == ["c"] and jobs["c"].places[-1] == (1, 1)
        gate.set()
        assert await tasks["a"] == "a" and await tasks["c"] == "c"
        assert [name for name, _ in ran] == ["a", "c"] and slots.running == 0

    asyncio.run(scenario())


def test_a_running_build_keeps_its_slot_until_its_thread_ends_even_if_cancelled():
    async def scenario():
        slots = BuildSlots(limit=1)
        ran, gate = [], threading.Event()
        first = asyncio.ensure_future(slots.run(Job("a"), blocking, gate, ran, "a"))
        await until(lambda: len(ran) == 1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.ensure_future(slots.run(Job("b"), blocking, threading.Event(), ran, "b"))
        await asyncio.sleep(0.2)
        assert len(ran) == 1 and slots.running == 1, "a thread still building holds its slot"
        gate.set()
        await until(lambda: len(ran) == 2)
        second.cancel()

    asyncio.run(scenario())


def test_a_higher_limit_lets_waiting_builds_start():
    async def scenario():
        slots = BuildSlots(limit=1)
        ran, gate = [], threading.Event()
        tasks = [asyncio.ensure_future(slots.run(Job(name), blocking, gate, ran, name)) for name in "abc"]
        await until(lambda: len(ran) == 1)
        slots.set_limit(3)
        await until(lambda: len(ran) == 3)
        assert slots.running == 3 and not slots.line
        gate.set()
        assert await asyncio.gather(*tasks) == ["a", "b", "c"]

    asyncio.run(scenario())


def test_two_slots_run_two_builds_and_the_third_waits():
    async def scenario():
        slots = BuildSlots(limit=2)
        ran, gate = [], threading.Event()
        jobs = [Job(name) for name in "abc"]
        tasks = [asyncio.ensure_future(slots.run(job, blocking, gate, ran, job.name)) for job in jobs]
        await until(lambda: len(ran) == 2)
        await asyncio.sleep(0.1)
        assert len(ran) == 2 and slots.running == 2 and jobs[2].places == [(1, 2)]
        gate.set()
        assert await asyncio.gather(*tasks) == ["a", "b", "c"]
        assert slots.running == 0

    asyncio.run(scenario())


def test_the_builds_reuse_one_pool_of_at_most_limit_threads():
    async def scenario():
        slots = BuildSlots(limit=2)
        gate, ran = threading.Event(), []
        gate.set()
        await slots.run(Job("a"), blocking, gate, ran, "a")
        pool = slots._executor
        await slots.run(Job("b"), blocking, gate, ran, "b")
        assert slots._executor is pool and pool._max_workers == 2
        slots.set_limit(3)  # more slots: a pool with more threads for the next build
        await slots.run(Job("c"), blocking, gate, ran, "c")
        assert slots._executor is not pool and slots._executor._max_workers == 3

    asyncio.run(scenario())


def test_a_build_cancelled_after_its_turn_came_passes_the_slot_on():
    async def scenario():
        slots, ran, gate, jobs, tasks = await one_running_two_in_line()
        # b's turn comes (a second slot opens) and b is cancelled before it runs again.
        slots.set_limit(2)
        tasks["b"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks["b"]
        await until(lambda: len(ran) == 2)
        assert [name for name, _ in ran] == ["a", "c"] and slots.running == 2
        gate.set()
        assert await tasks["a"] == "a" and await tasks["c"] == "c"
        assert slots.running == 0

    asyncio.run(scenario())


def test_a_build_cancelled_in_line_when_a_slot_opens_takes_no_slot_with_it():
    async def scenario():
        slots = BuildSlots(limit=1)
        ran, gate = [], threading.Event()
        first = asyncio.ensure_future(slots.run(Job("a"), blocking, gate, ran, "a"))
        await until(lambda: len(ran) == 1)
        second = asyncio.ensure_future(slots.run(Job("b"), blocking, gate, ran, "b"))
        await until(lambda: len(slots.line) == 1)
        second.cancel()  # cancelled in line ...
        slots.set_limit(2)  # ... and passed over when a slot opens, before it leaves the line itself
        with pytest.raises(asyncio.CancelledError):
            await second
        assert slots.running == 1 and not slots.line, "only a's build holds a slot"
        gate.set()
        await first
        assert slots.running == 0

    asyncio.run(scenario())


async def hold(slots, job, events: list, gate: asyncio.Event):
    async with slots.held(job):
        events.append(("in", job.name))
        await gate.wait()
    events.append(("out", job.name))


def test_servers_starting_beyond_the_limit_wait_their_turn_in_order_and_hear_their_place():
    """The servers' line (FormDockerSpawner.start_slots) is the builds' line held for a time."""

    async def scenario():
        slots = Slots(limit=2)
        events, gates = [], {name: asyncio.Event() for name in "abcd"}
        jobs = {name: Job(name) for name in "abcd"}
        tasks = [asyncio.ensure_future(hold(slots, jobs[name], events, gates[name])) for name in "abcd"]
        await until(lambda: len(events) == 2 and len(slots.line) == 2)
        assert events == [("in", "a"), ("in", "b")] and jobs["c"].places == [(1, 2)] and jobs["d"].places == [(2, 2)]
        tasks[3].cancel()  # d's start is cancelled in line (its start_timeout, a stop)
        gates["b"].set()
        await until(lambda: ("in", "c") in events)
        assert slots.line == collections.deque() and slots.running == 2
        for gate in gates.values():
            gate.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert ("in", "d") not in events and slots.running == 0
        return events

    asyncio.run(scenario())


def test_with_no_limit_no_server_waits():
    async def scenario():
        slots, events, gate = Slots(limit=0), [], asyncio.Event()
        jobs = [Job(str(i)) for i in range(30)]
        tasks = [asyncio.ensure_future(hold(slots, job, events, gate)) for job in jobs]
        await until(lambda: len(events) == 30)
        assert slots.running == 30 and not slots.line and not any(job.places for job in jobs)
        gate.set()
        await asyncio.gather(*tasks)
        assert slots.running == 0

    asyncio.run(scenario())


# -- fair turns between users, and the launch helpers' own threads --------------------------


class Owned(Job):
    def __init__(self, name, owner):
        super().__init__(name)
        self.owner = owner


def test_start_slots_go_round_robin_between_users_not_first_come():
    """One user's five named servers arrive first; another user's one arrives last: it gets
    the next free slot, not the sixth, and its place in line says so from the start."""
    async def scenario():
        slots = Slots(limit=1)
        order, gates, tasks = [], {}, {}

        async def start(job):
            async with slots.held(job):
                order.append(job.name)
                gates[job.name] = asyncio.Event()
                await gates[job.name].wait()

        jobs = [Owned(f"a{n}", "ada") for n in range(5)] + [Owned("b0", "bob")]
        for job in jobs:
            tasks[job.name] = asyncio.ensure_future(start(job))
            await asyncio.sleep(0)
        await until(lambda: order == ["a0"])
        bob = jobs[-1]
        assert bob.places[-1] == (1, 1), bob.places  # first in line: ada holds the slot
        assert jobs[1].places[-1] == (2, 1)
        gates["a0"].set()
        await until(lambda: len(order) == 2)
        assert order == ["a0", "b0"]
        for name in ("b0", "a1", "a2", "a3", "a4"):
            await until(lambda name=name: name in gates)
            gates[name].set()
        await asyncio.gather(*tasks.values())
        assert order == ["a0", "b0", "a1", "a2", "a3", "a4"] and slots.running == 0 and not slots.held_by

    asyncio.run(scenario())


def test_a_per_owner_cap_holds_even_with_free_slots_and_others_pass_it():
    async def scenario():
        slots = Slots(limit=3, per_owner=1)
        running, gates = [], {}

        async def run(job):
            async with slots.held(job):
                running.append(job.name)
                gates[job.name] = asyncio.Event()
                await gates[job.name].wait()

        jobs = [Owned("a0", "ada"), Owned("a1", "ada"), Owned("b0", "bob")]
        tasks = [asyncio.ensure_future(run(job)) for job in jobs]
        await until(lambda: sorted(running) == ["a0", "b0"])
        await asyncio.sleep(0.05)
        assert "a1" not in running and slots.running == 2, "ada's second waits though a slot is free"
        gates["a0"].set()
        await until(lambda: "a1" in running)
        gates["a1"].set()
        gates["b0"].set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_helper_calls_run_on_their_own_threads_with_a_deadline_for_their_wait():
    """A blocking helper call never takes a thread of the event loop's default pool (where
    tornado resolves names); a call that cannot get a thread before its deadline is Busy;
    the function gets the deadline to honour."""
    from formspawner.schedule import Busy, Workers

    async def scenario():
        pool = Workers("test", threads=1, per_owner=1)
        gate, seen = threading.Event(), []

        def hold(deadline, name):
            seen.append((name, threading.current_thread().name, round(deadline - time.monotonic())))
            assert gate.wait(10)
            return name

        first = asyncio.ensure_future(pool.run("ada", 30, hold, "first"))
        await until(lambda: len(seen) == 1)
        assert seen[0][1].startswith("formspawner-test") and seen[0][2] in (29, 30)
        with pytest.raises(Busy, match="the hub's test threads stayed busy for 0 s"):
            await pool.run("bob", 0.2, hold, "second")
        # The loop's default pool is free all along.
        assert await asyncio.get_running_loop().run_in_executor(None, lambda: "default pool") == "default pool"
        gate.set()
        assert await first == "first"
        assert await pool.run("bob", 5, hold, "third") == "third"
        assert pool.running == 0 and not pool.line

    asyncio.run(scenario())
