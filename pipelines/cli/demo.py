"""`govstream demo`: the whole pipeline on the embedded stack, reconciled (pipelines.demo)."""

from __future__ import annotations

import typer

from pipelines import demo as demo_run


def demo(
    reports: int = typer.Option(2000, min=10, max=200_000, help="Reports to simulate."),
    seed: int = typer.Option(1, help="Simulator seed."),
    timeout: float = typer.Option(300.0, min=10, help="Seconds to wait for reconciliation."),
) -> None:
    """Run the pipeline on simulated data and show the result (the README's `make demo`)."""
    ok = demo_run.run(reports=reports, seed=seed, timeout=timeout)
    raise typer.Exit(0 if ok else 1)
