"""A starting server is noticed as soon as it answers: formspawner checks it every 0.1 s
before start() returns, where the hub's own wait backs off to 5 s between tries; a
container that stops first, or a server that never answers, ends the start with a message
for the user. Real sockets on loopback stand for the server; the container's state
(DockerSpawner.poll, a Docker API call) is a stand-in, as the unit tier has no engine
(tests/integration starts real servers through the whole path)."""

import asyncio
import socket

import pytest
from jupyterhub.objects import Server

from formspawner import FormDockerSpawner, spawner
from formspawner.errors import UserFacingError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def starting_spawner(poll_status=None, **config):
    s = FormDockerSpawner(**config)
    s._server = Server(base_url="/user/alice/")

    async def poll():
        return poll_status

    s.poll = poll
    return s


async def serve(port: int, statuses: list[int], seen: list[str]):
    """A server on `port` answering each request with the next of `statuses` (the last repeats)."""

    async def answer(reader, writer):
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        seen.append(request.split()[1])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", port)


def test_a_server_is_noticed_within_a_fraction_of_a_second_of_answering_its_api():
    async def run():
        port, seen = free_port(), []
        s = starting_spawner(http_timeout=10)
        waiting = asyncio.ensure_future(s._answering(("127.0.0.1", port)))
        await asyncio.sleep(1.2)  # refused meanwhile; the hub's back-off would be at 0.2-1.6 s gaps by now
        assert not waiting.done()
        loop = asyncio.get_running_loop()
        server = await serve(port, [404], seen)  # any answer below 500 is an answer, as for the hub
        listening = loop.time()
        await asyncio.wait_for(waiting, 5)
        noticed = loop.time() - listening
        server.close()
        return seen, noticed

    seen, noticed = asyncio.run(run())
    assert seen[-1] == "/user/alice/api"
    assert noticed < 1.0, noticed


def test_answers_of_500_and_over_mean_not_yet():
    async def run():
        port, seen = free_port(), []
        server = await serve(port, [503, 502, 500, 200], seen)
        await starting_spawner(http_timeout=10)._answering(("127.0.0.1", port))
        server.close()
        return seen

    assert len(asyncio.run(run())) == 4


def test_a_container_that_stops_before_answering_ends_the_start_with_its_status(monkeypatch):
    monkeypatch.setattr(spawner, "STATE_INTERVAL", 0.2)
    s = starting_spawner(poll_status="ExitCode=1, Error='', FinishedAt=x", http_timeout=10)
    with pytest.raises(UserFacingError, match=r"stopped before it answered \(ExitCode=1"):
        asyncio.run(s._answering(("127.0.0.1", free_port())))


def test_a_server_that_never_answers_fails_after_http_timeout_with_a_message():
    s = starting_spawner(http_timeout=1)
    with pytest.raises(UserFacingError, match="did not answer within 1 seconds"):
        asyncio.run(s._answering(("127.0.0.1", free_port())))


def test_with_internal_ssl_the_hubs_own_wait_checks_alone():
    s = starting_spawner(http_timeout=1)
    s.internal_ssl = True
    asyncio.run(s._answering(("127.0.0.1", free_port())))  # returns at once, no error
