"""Helpers of the end-to-end tests."""

from __future__ import annotations

from pipelines import clickhouse, contracts, kafka_admin, lag
from pipelines.settings import Settings
from pipelines.topics import ensure_topics
from tests.conftest import free_port

#: the worker's internal topic (report agent → work-order agent); a new group would read it all
ROUTED = "report-routed"


def positioned_run(
    stack: Settings, name: str, unique: str, *, migrate: bool = True
) -> tuple[Settings, dict[lag.TopicPart, int]]:
    """Settings of one worker (own group, database and web port), its group committed at the
    current end of every topic (earlier tests' events are not its business), its database
    migrated (unless ``migrate`` is False); and those start offsets."""
    settings = stack.model_copy(
        update={
            "app_id": f"govstream-{name}-{unique}",
            "clickhouse_database": f"{name}_{unique}",
            "worker_web_port": free_port(),
        }
    )
    ensure_topics(settings, extra=[ROUTED])
    topics = [*contracts.TOPICS, ROUTED]
    start = kafka_admin.log_end_offsets(settings, kafka_admin.partitions_of(settings, topics))
    kafka_admin.alter_offsets(settings, settings.app_id, start)
    if migrate:
        clickhouse.migrate(clickhouse.get_client(settings), settings.clickhouse_database)
    return settings, start
