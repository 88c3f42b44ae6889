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
