"""`make demo`: bring the embedded stack up, run the main job, show the result, stop.

Uses the embedded defaults (or whatever ``GOVSTREAM_*`` says). A stack that already ran
before the demo is left running; one the demo started is stopped at the end.
"""

from __future__ import annotations

import sys

from pipelines.cli.output import console, print_table
from pipelines.errors import GovstreamError
from pipelines.settings import get_settings
from pipelines.stack import control


def run() -> int:
    settings = get_settings()
    console.rule("govstream demo")
    console.print(f"starting the embedded stack in {settings.home} …")
    started, statuses = control.up(settings)
    try:
        print_table(
            [s.as_dict() for s in statuses],
            ["name", "state", "pid", "address", "healthy"],
            title="stack",
        )
        healthy = sum(s.healthy for s in statuses)
        console.print(f"{healthy}/{len(statuses)} services healthy")
        return 0 if healthy == len(statuses) else 1
    finally:
        if started:
            control.down(settings)
            console.print("stack stopped")


def main() -> int:
    try:
        return run()
    except GovstreamError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
