"""The Faust ceiling: an agent that does nothing per event, run as its own worker process.

Configured like the pipeline's app (``agents.app``: same broker, session and buffer settings,
raw serializers, memory store), it counts the events of one topic and, once it saw
``BENCH_EXPECT`` of them, writes ``{"events", "first", "last"}`` (wall-clock seconds of the
first and the last event) to ``BENCH_OUT``. The harness then stops the process.

Run by the harness as ``python -m benchmarks.bare_faust worker`` with ``BENCH_*`` variables.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust
from faust.types import StreamT

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
TOPIC = os.environ.get("BENCH_TOPIC", "report")
EXPECT = int(os.environ.get("BENCH_EXPECT", "1"))
OUT = Path(os.environ.get("BENCH_OUT", "bare_faust.json"))

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-bare-faust"),
    broker=[f"kafka://{server}" for server in BROKER.split(",")],
    store="memory://",
    autodiscover=False,
    datadir=os.environ.get("BENCH_DATADIR", str(OUT.parent / "bare-faust-data")),
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=int(os.environ.get("BENCH_BUFFER", "4096")),
    web_enabled=False,
)
topic = app.topic(TOPIC, key_serializer="raw", value_serializer="raw")


@app.agent(topic)
async def count(stream: StreamT) -> None:
    seen, first = 0, 0.0
    async for _event in stream:
        seen += 1
        if seen == 1:
            first = time.time()
        if seen == EXPECT:
            result = {"events": seen, "first": first, "last": time.time()}
            OUT.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    app.main()
