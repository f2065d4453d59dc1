"""Issue 15, "Done when": after a simulated day with personal details written into every
free-text field of every written form (reports, handling steps, form answers, warnings), no
phone number, ID number or resident name the simulator generated is in any ClickHouse table or
view the analyst can read (read as the analyst) or in any log file of the worker and the stack.

The personal data is every ``name``/``phone``/``id_number`` of the generated events plus what
is written into the free text: the event's own person, their phone full width, ``+86``-prefixed
and spaced, a landline, and the ID number glued to letters (``sfz430…``) and split by spaces.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines import alerts, contracts, deadletter, divisions, kafka_admin, reports, simulator
from pipelines.clickhouse import get_client
from pipelines.settings import Settings
from tests.reliability.conftest import ROUTED, Run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LANDLINE = "0730-8123456"
FREE_TEXT = {
    contracts.REPORT: (*reports.FREE_TEXT, "operator_role"),
    contracts.ALERT: alerts.FREE_TEXT,
}
_WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


def _people(value: Any, found: dict[str, set[str]]) -> None:
    """Every name, phone and ID number of the simulator inside one event value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key in ("name", "phone", "id_number"):
                found[key].add(item)
            _people(item, found)
    elif isinstance(value, list):
        for item in value:
            _people(item, found)


def _personal_text(person: dict[str, str]) -> str:
    phone, number, name = person["phone"], person["id_number"], person["name"]
    return (
        f"我叫{name}，姓名：{name}，{name}先生 电话{phone.translate(_WIDE)} "
        f"+86 {phone[:3]} {phone[3:7]} {phone[7:]} 0086{phone} 座机{LANDLINE} "
        f"身份证sfz{number} / {number[:6]} {number[6:14]} {number[14:]}"
    )


def _inject(event: simulator.SimEvent, person: dict[str, str]) -> None:
    """Personal details into every free-text field of the event's written form."""
    value = event.value
    if value is None or event.raw is not None:
        return
    text = _personal_text(person)
    if event.topic == contracts.FORM_SUBMISSION:
        value.setdefault("answers", {})["remark"] = text
        return
    for field in FREE_TEXT.get(event.topic, ()):
        if field == "operator_role" and isinstance(value.get("operator"), dict):
            value["operator"]["role"] = f"网格员{person['name']} {person['phone']}"
        elif field in value or event.topic == contracts.ALERT:
            value[field] = f"{value.get(field) or ''} {text}".strip()
    if isinstance(value.get("images"), list):
        value["images"] = [
            f"https://img.example.gov.cn/r/{person['phone']}/{person['id_number']}.jpg"
        ]


def _wait_consumed(settings: Settings, timeout: float) -> None:
    """Until the worker committed every input partition's end twice in a row (offsets are
    committed after the rows are inserted; the routed hop's end moves while it works)."""
    inputs = [contracts.REPORT, contracts.FORM_SUBMISSION, contracts.ALERT, ROUTED]
    partitions = kafka_admin.partitions_of(settings, inputs)
    deadline, caught_up = time.monotonic() + timeout, 0
    behind: dict[Any, tuple[int | None, int]] = {}
    while time.monotonic() < deadline and caught_up < 2:
        ends = kafka_admin.log_end_offsets(settings, partitions)
        committed = kafka_admin.committed_offsets(settings, settings.app_id)
        behind = {p: (committed.get(p), e) for p, e in ends.items() if committed.get(p, -1) < e}
        caught_up = 0 if behind else caught_up + 1
        time.sleep(1.0)
    assert caught_up >= 2, f"not consumed within {timeout:.0f} s: {sorted(behind.items())[:6]}"


def _decoded(text: str) -> str:
    """``text`` and, for every base64-looking run in it, what it decodes to."""
    extra = []
    for run in re.findall(r"[A-Za-z0-9+/]{12,}={0,2}", text):
        try:
            extra.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "ignore"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join([text, *extra])


def _analyst_text(settings: Settings) -> dict[str, str]:
    """table or view → everything the analyst reads in it, as text."""
    analyst = get_client(settings, analyst=True)
    db = settings.clickhouse_database
    tables = [r[0] for r in analyst.query(f"SHOW TABLES FROM {db}").result_rows]
    assert "dead_letters" in tables and "reports" in tables
    out = {}
    for table in tables:
        if table == deadletter.PAYLOAD_TABLE:
            with pytest.raises(Exception, match="497|Not enough privileges"):
                analyst.query(f"SELECT * FROM {db}.{table}")
            continue
        body = analyst.raw_query(f"SELECT * FROM {db}.{table} FORMAT JSONEachRow")
        out[table] = _decoded(body.decode("utf-8", "replace"))
    return out


def _leaks(texts: dict[str, str], people: dict[str, set[str]]) -> dict[str, list[str]]:
    """``table.column`` (or ``log name``) → ``kind 'value' in …context…`` of every generated
    value found there (the column is the JSON key the value sits in)."""
    found: dict[str, list[str]] = {}
    for where, text in texts.items():
        for kind, values in people.items():
            for value in values:
                at = text.find(value)
                if at < 0:
                    continue
                column = re.findall(r'"(\w+)":', text[max(0, at - 2000) : at])
                place = f"{where}.{column[-1]}" if column and not where.startswith("log") else where
                context = text[max(0, at - 40) : at + 40].replace("\n", " ")
                found.setdefault(place, []).append(f"{kind} {value!r} in …{context}…")
    return found


def test_no_personal_data_reaches_analyst_tables_or_logs(run: Run, stack: Settings) -> None:
    config = simulator.SimConfig(seed=15, reports=100, forms=100, warnings=4)
    events = simulator.generate(config)
    people: dict[str, set[str]] = {"name": set(), "phone": set(), "id_number": set()}
    for n, event in enumerate(events):
        _people(event.value, people)
        rng = random.Random(n)
        person = {
            "name": simulator._name(rng),
            "phone": f"139{n:08d}",
            "id_number": simulator.id_number(rng, "430602"),
        }
        _inject(event, person)
        for key, value in person.items():
            people[key].add(value)
    people["phone"].add(LANDLINE)
    # a name that is part of a place name (韩华 in 时韩华村委会) is the place's, not a leak
    places = "\n".join(d.name for d in divisions.all_divisions())
    people["name"] = {n for n in people["name"] if n not in places}

    worker = run.worker().start()
    worker.wait_ready()
    run.send(events)
    _wait_consumed(run.settings, timeout=240)
    worker.stop()

    texts = _analyst_text(run.settings)
    for path in sorted(Path(stack.log_dir).glob("*.log")):
        texts[f"log {path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    texts["log worker"] = run.worker_logs()
    leaks = _leaks(texts, people)
    summary = [f"{where}: {len(items)}, e.g. {items[0]}" for where, items in sorted(leaks.items())]
    assert not leaks, "personal data found:\n" + "\n".join(summary)
