"""formspawner.events.EventLog: the one follow-from-the-first-event mechanism (build logs, progress)."""

import asyncio

from formspawner.events import EventLog


def test_every_reader_gets_every_event_from_the_first_and_stops_when_the_task_is_done():
    async def scenario():
        log = EventLog()
        log.append("first")
        task = asyncio.ensure_future(asyncio.sleep(0.05))

        async def read():
            return [event async for event in log.follow(until=task)]

        early, late = asyncio.ensure_future(read()), None
        await asyncio.sleep(0)
        log.append("second")
        late = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        log.append("third")
        return await early, await late

    early, late = asyncio.run(scenario())
    assert early == late == ["first", "second", "third"]


def test_a_reader_without_an_end_keeps_following_across_a_restart():
    async def scenario():
        log = EventLog()
        seen = []

        async def read():
            async for event in log.follow():
                seen.append(event)

        reader = asyncio.ensure_future(read())
        log.append({"progress": 2})
        await asyncio.sleep(0)
        log.restart()
        log.append({"progress": 1})
        log.append({"progress": 50})
        await asyncio.sleep(0.01)
        reader.cancel()
        return seen, log.events

    seen, events = asyncio.run(scenario())
    assert seen[0] == {"progress": 2} and events == [{"progress": 1}, {"progress": 50}]
    assert {"progress": 50} in seen


def test_a_bounded_log_keeps_only_the_newest_events_and_a_new_reader_starts_at_the_oldest_kept():
    async def scenario():
        log = EventLog(maxlen=3)
        for n in range(10):
            log.append(n)
        task = asyncio.ensure_future(asyncio.sleep(0))
        await task
        return [event async for event in log.follow(until=task, gap=lambda count: f"{count} missed")], log

    seen, log = asyncio.run(scenario())
    # Trimmed in chunks: at least maxlen and fewer than twice maxlen are held.
    assert seen == [6, 7, 8, 9]
    assert log.maxlen <= len(log.events) < 2 * log.maxlen and log.dropped + len(log.events) == 10


def test_a_reader_that_falls_behind_skips_to_the_oldest_kept_event():
    async def scenario():
        log = EventLog(maxlen=2)
        log.append("a")
        seen = []
        done = asyncio.get_running_loop().create_future()

        async def read():
            async for event in log.follow(until=done, gap=lambda count: f"({count} not shown)"):
                seen.append(event)
                if event == "a":
                    for n in range(6):  # the writer runs ahead while this reader is busy
                        log.append(n)

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        done.set_result(None)
        await reader
        return seen

    # Events 0, 1 and 2 were trimmed while the reader was busy with "a".
    assert asyncio.run(scenario()) == ["a", "(3 not shown)", 3, 4, 5]


def test_a_long_backlog_gives_other_tasks_their_turn():
    async def scenario():
        log = EventLog()
        for n in range(1000):
            log.append(n)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = ticks
        events = [event async for event in log.follow(until=done)]
        other.cancel()
        return len(events), ticks - before

    count, turns = asyncio.run(scenario())
    assert count == 1000 and turns >= 1000 // 64 - 1
