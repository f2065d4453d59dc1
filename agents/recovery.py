"""Table recovery reads each changelog partition to its true end.

Faust recovers a table from its changelog up to the partition's high watermark, which it takes
from ListOffsets(latest). Tansu answers that with the base offset of the last record batch
+ 1, not the offset after the last record, so with multi-record batches a recovery stopped
short of the last batch and a rebalanced or restarted worker missed table state.
:class:`TableManager` (the app's ``TableManager`` setting) gives Faust a Recovery that takes
the end from :func:`pipelines.kafka_admin.log_end_offsets`, which is exact on Tansu and on
Apache Kafka (it reads the last batch when the two differ).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import faust.tables
from faust.tables.recovery import Recovery
from faust.types import TP

from pipelines import kafka_admin
from pipelines.settings import get_settings

log = logging.getLogger("govstream.agents.recovery")


class ExactEndRecovery(Recovery):
    """Faust's Recovery, taking each changelog partition's end from
    :func:`pipelines.kafka_admin.log_end_offsets` (see the module doc)."""

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        settings = get_settings()
        parts = sorted((tp.topic, tp.partition) for tp in tps)
        ends = await asyncio.to_thread(kafka_admin.log_end_offsets, settings, parts)
        # Faust's highwater is the offset of the last record (-1: empty)
        highwaters = {tp: ends.get((tp.topic, tp.partition), 0) - 1 for tp in tps}
        log.info(
            "%s changelog ends: %s",
            title,
            ", ".join(
                f"{tp.topic}[{tp.partition}]={hw + 1}" for tp, hw in sorted(highwaters.items())
            ),
        )
        destination.clear()
        destination.update(highwaters)


class TableManager(faust.tables.TableManager):
    """Faust's TableManager with :class:`ExactEndRecovery` (the app's ``TableManager``
    setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ExactEndRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
