"""Wire :class:`pipelines.offsets.OffsetGuard` into Faust's consumer: no record of an input
topic is skipped, across rebalances and on Tansu. Faust's own extension points only:

* :class:`Transport` — the aiokafka transport whose ``Consumer`` is :class:`GuardedConsumer`
  (the app creates it in ``GovstreamApp._new_transport``);
* :class:`GuardedConsumer` — Faust's ``Consumer`` with ``_drain_messages`` (the loop that moves
  records from the fetcher to the streams) mirrored from faust-streaming 0.15.3 plus the guard:
  for every partition that is not a table changelog the guard decides per record (see
  ``pipelines/offsets.py``). Changelog partitions keep Faust's handling: table recovery
  positions them itself and compacted changelogs have real gaps. Every seek (to the committed
  offsets after a rebalance, or a stream's seek) tells the guard where the partition is;
* :class:`CountingFlowControl` — the app's flow-control event, counting resumes: every resume
  empties the streams' queues, so the input partitions are positioned again at their committed
  offsets before another record is delivered;
* :class:`ConsumerThread` — sets the aiokafka consumer's fetch wait, which Faust hard-codes to
  1500 ms (``FETCH_WAIT_MS``).

The mirrored method is checked against the installed Faust: ``tests/unit/test_faust_mirror.py``
fails when upstream's source of a method mirrored or extended here changes (pyproject pins
faust-streaming to the tested range).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service, ServiceT
from mode.utils.queues import FlowControlEvent

from pipelines import metrics
from pipelines.offsets import OffsetGuard, Verdict

log = logging.getLogger("govstream.agents.ordered")

#: How long a worker's fetch waits for data. Faust hard-codes 1500 ms; Tansu answers a fetch
#: after about half the wait even when data is waiting, so that was ~0.75 s per hop.
FETCH_WAIT_MS = 100


class CountingFlowControl(FlowControlEvent):
    """The app's flow control, counting resumes (each one empties every stream queue)."""

    resumes = 0

    def resume(self) -> None:
        super().resume()
        self.resumes += 1


def _resumes(consumer: Consumer) -> int:
    flow = consumer.app.flow_control
    return flow.resumes if isinstance(flow, CountingFlowControl) else 0


def _guard(consumer: Consumer) -> OffsetGuard:
    guard = consumer.__dict__.get("_govstream_guard")
    if guard is None:
        guard = consumer.__dict__["_govstream_guard"] = OffsetGuard()
    return cast(OffsetGuard, guard)


async def _seek(self: Consumer, tp: TP, offset: int) -> None:
    try:
        await self.seek(tp, offset)
    except IllegalStateError:  # revoked meanwhile: the rebalance positions it
        log.info("%s[%d] was revoked before the seek to %d", tp.topic, tp.partition, offset)


def _input_partitions(self: Consumer) -> list[TP]:
    """The assigned partitions the guard watches: all but table changelogs."""
    return sorted(tp for tp in self.assignment() if not self._is_changelog_tp(tp))


async def _rewind(self: Consumer, guard: OffsetGuard) -> None:
    """Position every input partition where no record can have been lost in a queue."""
    positions = []
    for tp in _input_partitions(self):
        target = guard.rewind_target(tp, self._committed_offset.get(tp))
        if target is not None:
            await _seek(self, tp, target)
            positions.append(f"{tp.topic}[{tp.partition}]@{target}")
    if positions:
        log.info("flow resumed, stream queues emptied: reading again from %s", " ".join(positions))


async def _drain_messages(self: Consumer, fetcher: ServiceT) -> None:  # noqa: C901
    """Faust's drain loop with the offset guard on input partitions (see module doc)."""
    guard = _guard(self)
    resumes_seen = _resumes(self)
    callback = self.callback
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
    read_offset = self._read_offset
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    num_since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            if resumes_seen != _resumes(self):
                resumes_seen = _resumes(self)
                await _rewind(self, guard)
            self.diag.set_flag(CONSUMER_FETCHING)
            ait = cast(AsyncIterator, self.getmany(timeout=1.0))
            await self.sleep(0)  # getmany may return at once, again and again
            if self.should_stop:
                continue
            guard.new_fetch()
            async for tp, message in ait:
                num_since_yield += 1
                if num_since_yield > 100:
                    await asyncio.sleep(0)
                    num_since_yield = 0
                offset = message.offset
                changelog = self._is_changelog_tp(tp)
                if changelog:
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # as Faust: already read
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                elif resumes_seen != _resumes(self):
                    continue  # the queues were emptied: re-fetched after the rewind
                else:
                    decision = guard.check(tp, offset)
                    if decision.verdict in (Verdict.DROP, Verdict.SKIP):
                        continue
                    if decision.verdict is Verdict.RESEEK:
                        log.warning(
                            "%s[%d]: got offset %d, expected %d; fetching again from %d",
                            tp.topic, tp.partition, offset, decision.expected, decision.expected,
                        )  # fmt: skip
                        metrics.CONSUMER_JUMPS.labels(tp.topic, "refetched").inc()
                        await _seek(self, tp, cast(int, decision.expected))
                        continue
                    if decision.verdict is Verdict.GAP:
                        log.warning(
                            "%s[%d]: offsets %d..%d are not on the broker after %d fetches; "
                            "going on from %d",
                            tp.topic, tp.partition, decision.expected, offset - 1,
                            guard.confirmations, offset,
                        )  # fmt: skip
                        metrics.CONSUMER_JUMPS.labels(tp.topic, "gap").inc()
                        if acks_enabled_for(message.topic):
                            await self._add_gap(tp, cast(int, decision.expected), offset - 1)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                delivery = callback(message)
                result = await self.wait_first(delivery, self.suspend_flow.wait())
                if delivery not in result.done:
                    break  # a rebalance suspended the flow: it seeks again afterwards
                read_offset[tp] = offset
                if not changelog:
                    guard.delivered(tp, offset)
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            log.info("Consumer shutting down for user cancel.")
            return
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


class GuardedConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with the offset guard (see the module doc)."""

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        await _drain_messages(self, fetcher)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        guard = _guard(self)
        positions: Mapping[TP, int | None] = self._read_offset
        for tp in _input_partitions(self):
            guard.seeked(tp, positions.get(tp))

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        _guard(self).seeked(partition, offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        _guard(self).revoked(revoked)
        await super().on_partitions_revoked(revoked)


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread with our fetch wait (Faust passes ``fetch_max_wait_ms=1500``)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS  # read by AIOKafkaConsumer.start()
        return consumer


class Transport(aiokafka_driver.Transport):
    """The aiokafka transport with :class:`GuardedConsumer`."""

    Consumer = GuardedConsumer
