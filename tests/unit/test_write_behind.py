"""agents.common.WriteBehind: a batch is written while the next one is processed, its events
acknowledged only after its rows landed and its sends were acknowledged, one batch in flight.

The stream and the sink are stand-ins recording the order of things (the agents themselves
are exercised against a real broker, ClickHouse engine and Faust worker in tests/e2e and
tests/reliability)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from agents.common import WriteBehind
from pipelines.sink import Batch

pytestmark = pytest.mark.unit


class Stream:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def ack(self, event: Any) -> None:
        self.log.append(f"ack {event.name}")


class Sink:
    """A sink whose writes finish when the test says so."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.release: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.fail: set[str] = set()

    async def write(self, batch: Batch) -> list[Any]:
        name = batch.rows["t"][0][0]
        self.log.append(f"write {name}")
        await self.release[name].wait()
        if name in self.fail:
            raise RuntimeError(f"{name} failed")
        self.log.append(f"landed {name}")
        return []


def batch_of(name: str) -> tuple[list[Any], Batch]:
    batch = Batch()
    batch.add("t", [name])
    event = SimpleNamespace(name=name, message=SimpleNamespace(timestamp=None))
    return [event], batch


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_batch_is_acknowledged_after_it_lands_while_the_next_is_processed() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        sink = Sink(log)
        writer = WriteBehind(Stream(log), "test_agent", sink)
        send = asyncio.get_running_loop().create_future()
        events, batch = batch_of("b1")
        await writer.submit(events, batch, [send])
        await settle()
        log.append("processing b2")  # the caller goes on while b1 is written
        sink.release["b1"].set()
        await settle()
        log.append("b1 send acknowledged")  # b1's rows landed, its send is still pending
        send.set_result(None)
        events, batch = batch_of("b2")
        submitted = asyncio.ensure_future(writer.submit(events, batch, []))
        await settle()
        assert submitted.done()  # b1 had landed and was acknowledged: nothing to wait for
        sink.release["b2"].set()
        await writer.drain()
        return log

    assert asyncio.run(scenario()) == [
        "write b1",
        "processing b2",
        "landed b1",
        "b1 send acknowledged",
        "ack b1",
        "write b2",
        "landed b2",
        "ack b2",
    ]


def test_one_batch_in_flight_the_next_submit_waits_for_it() -> None:
    async def scenario() -> None:
        log: list[str] = []
        sink = Sink(log)
        writer = WriteBehind(Stream(log), "test_agent", sink)
        await writer.submit(*batch_of("b1"), [])
        second = asyncio.ensure_future(writer.submit(*batch_of("b2"), []))
        await settle()
        assert not second.done()  # b1 is still being written
        assert log == ["write b1"]
        sink.release["b1"].set()
        await second
        assert log[:3] == ["write b1", "landed b1", "ack b1"]  # b2 only after b1's ack
        sink.release["b2"].set()
        await writer.drain()
        assert log[-3:] == ["write b2", "landed b2", "ack b2"]

    asyncio.run(scenario())


def test_a_failed_write_is_raised_by_the_next_call_and_nothing_is_acknowledged() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        sink = Sink(log)
        sink.fail.add("b1")
        writer = WriteBehind(Stream(log), "test_agent", sink)
        await writer.submit(*batch_of("b1"), [])
        sink.release["b1"].set()
        with pytest.raises(RuntimeError, match="b1 failed"):
            await writer.submit(*batch_of("b2"), [])
        return log

    assert asyncio.run(scenario()) == ["write b1"]
