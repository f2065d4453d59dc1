"""`govstream replay`: move a stopped group's committed offsets back to reprocess events.

Safe because the sink is idempotent (deduplication tokens, ReplacingMergeTree): replayed
events do not add rows. Refuses while the group has live members (their next commit would
overwrite the reset, and Kafka refuses it anyway).
"""

from __future__ import annotations

from collections.abc import Mapping

import typer

from pipelines import kafka_admin
from pipelines.errors import ConfigError, GovstreamError
from pipelines.output import console, print_json, print_table
from pipelines.settings import get_settings


class ReplayRefused(GovstreamError):
    """The group is live: replaying now would race its consumers."""


def parse_to_offset(values: list[str]) -> dict[int, int]:
    """``P:O`` pairs → {partition: offset}."""
    out: dict[int, int] = {}
    for value in values:
        part, sep, off = value.partition(":")
        try:
            if not sep:
                raise ValueError
            partition, offset = int(part), int(off)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not PARTITION:OFFSET", param_hint="--to-offset"
            ) from None
        if partition < 0 or offset < 0:
            raise typer.BadParameter(f"{value!r}: negative value", param_hint="--to-offset")
        out[partition] = offset
    return out


def plan(
    partitions: list[int],
    committed: Mapping[int, int],
    earliest: Mapping[int, int],
    log_end: Mapping[int, int],
    *,
    to_earliest: bool = False,
    to_offset: Mapping[int, int] | None = None,
    shift: int | None = None,
) -> dict[int, tuple[int | None, int]]:
    """{partition: (old offset or None, new offset)}; new offsets stay within the log."""
    result: dict[int, tuple[int | None, int]] = {}
    if to_offset:
        unknown = sorted(set(to_offset) - set(partitions))
        if unknown:
            raise ConfigError(f"--to-offset: no partition {unknown[0]} (have {partitions})")
    for p in partitions:
        old = committed.get(p)
        low, high = earliest.get(p, 0), log_end.get(p, 0)
        if to_earliest:
            new = low
        elif to_offset is not None:
            if p not in to_offset:
                continue
            new = to_offset[p]
            if not low <= new <= high:
                raise ConfigError(f"--to-offset {p}:{new} is outside the log [{low}, {high}]")
        elif shift is not None:
            start = old if old is not None else low
            new = min(high, max(low, start + shift))
        else:  # pragma: no cover - the command checks that one mode is given
            raise ConfigError("give --to-earliest, --to-offset or --shift")
        result[p] = (old, new)
    return result


def replay(
    group: str = typer.Option(..., "--group", "-g", help="Consumer group to move."),
    topic: str = typer.Option(..., "--topic", "-t", help="Topic whose offsets move."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Every partition to its start."),
    to_offset: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--to-offset", help="PARTITION:OFFSET (repeatable); other partitions stay."
    ),
    shift: int | None = typer.Option(
        None, "--shift", help="Move every partition by N (negative: back), within the log."
    ),
    remove_members: bool = typer.Option(
        False,
        "--remove-members",
        help="First make the group's listed members leave (stopped consumers Tansu still lists).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Commit without asking."),
    json_: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Reset a stopped group's offsets on one topic so its events are processed again."""
    modes = sum([to_earliest, bool(to_offset), shift is not None])
    if modes != 1:
        raise typer.BadParameter("give exactly one of --to-earliest, --to-offset, --shift")
    targets = parse_to_offset(to_offset) if to_offset else None
    settings = get_settings()
    parts = [p for t, p in kafka_admin.partitions_of(settings, [topic]) if t == topic]
    if not parts:
        raise ConfigError(f"unknown topic {topic!r}")
    committed_all = kafka_admin.committed_offsets(settings, group)
    if not committed_all and group not in kafka_admin.list_groups(settings):
        raise ConfigError(f"unknown consumer group {group!r}")
    if remove_members:
        for member in kafka_admin.remove_members(settings, group):
            if not json_:
                console.print(f"removed member {member} from group {group!r}")
    members = kafka_admin.live_members(settings, [group])[group]
    if members:
        raise ReplayRefused(
            f"group {group!r} has {members} live member(s); stop its consumers "
            "(e.g. the worker) before replaying; if they are stopped but still listed "
            "(Tansu keeps stopped Faust/aiokafka members), add --remove-members"
        )
    tps = [(topic, p) for p in parts]
    steps = plan(
        parts,
        {p: o for (t, p), o in committed_all.items() if t == topic},
        {p: o for (_, p), o in kafka_admin.list_offsets(settings, tps, latest=False).items()},
        {p: o for (_, p), o in kafka_admin.log_end_offsets(settings, tps).items()},
        to_earliest=to_earliest,
        to_offset=targets,
        shift=shift,
    )
    rows = [
        {"partition": p, "old": "-" if old is None else old, "new": new, "delta": new - (old or 0)}
        for p, (old, new) in sorted(steps.items())
    ]
    if json_:
        print_json({"group": group, "topic": topic, "plan": rows})
    else:
        print_table(rows, ["partition", "old", "new", "delta"], title=f"replay {group} on {topic}")
    if not yes:
        typer.confirm("commit these offsets?", abort=True)
    kafka_admin.alter_offsets(settings, group, {(topic, p): new for p, (_, new) in steps.items()})
    if not json_:
        console.print(f"committed {len(steps)} offset(s) for group {group!r} on {topic!r}")
