"""``python -m benchmarks.classify_speed``: the rules classifier's cost per simulated report.

No stack: the texts are the descriptions of the simulator's SUBMIT events (``--seed``,
``--reports``; or the texts of a labelled TSV, ``--texts FILE``), classified by
``classify.classify_rules`` in chunks of 100, several rounds; the figure is the median over
rounds of thread CPU time per report (the machine is shared: CPU time moves less than wall
time with the neighbours' load). Each round starts with an empty clause cache
(``classify.read_clause``), as a worker starting on the day's reports: a clause repeated
within the round is read once, one repeated across rounds is not. Issue 14's target for the
stage table's ``classify (per SUBMIT)`` row is 60 µs per event.

``--against REV`` measures ``pipelines/classify.py`` of a git revision in the same run,
alternating with the working tree's chunk by chunk, and prints both figures and their ratio:
on a noisy machine the ratio is the number to compare, not two runs' absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines import classify
from pipelines.classify_eval import load_tsv
from pipelines.simulator import SimConfig, generate

TARGET_US = 60.0  # issue 14, item 6
CHUNK = 100


def report_texts(seed: int = 3, reports: int = 2000) -> list[str]:
    """Descriptions of the simulator's SUBMIT events (the texts the worker classifies)."""
    events = generate(SimConfig(seed=seed, reports=reports, forms=0, warnings=0))
    return [
        str(e.value.get("description") or "")
        for e in events
        if e.topic == "report" and isinstance(e.value, dict) and e.value.get("action") == "SUBMIT"
    ]


def module_at(rev: str) -> types.ModuleType:
    """``pipelines/classify.py`` as of git revision ``rev``, loaded as its own module (its
    data paths resolve against the working tree's ``pipelines/data``)."""
    path = Path(classify.__file__)
    source = subprocess.run(
        ["git", "show", f"{rev}:pipelines/classify.py"],
        cwd=path.parent, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType(f"classify_at_{rev}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def forget(module: Any) -> None:
    """Empty ``module``'s clause cache (a ``classify`` of a revision without one: nothing)."""
    cached = getattr(module, "read_clause", None)
    if cached is not None:
        cached.cache_clear()


def measure(
    functions: dict[str, Callable[[str], Any]],
    texts: Sequence[str],
    rounds: int,
    reset: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """CPU µs per text of each function, per round, alternating chunk by chunk; ``reset`` is
    called before each round."""
    for fn in functions.values():  # warm up: segmenter, dictionaries
        for text in texts[:50]:
            fn(text)
    chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
    names = list(functions)
    out: dict[str, list[float]] = {name: [] for name in names}
    clock = time.thread_time
    for r in range(rounds):
        reset()
        spent = dict.fromkeys(names, 0.0)
        for j, chunk in enumerate(chunks):
            shift = (r + j) % len(names)
            for name in names[shift:] + names[:shift]:
                fn = functions[name]
                started = clock()
                for text in chunk:
                    fn(text)
                spent[name] += clock() - started
        for name in names:
            out[name].append(spent[name] / len(texts) * 1e6)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.classify_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=3, help="simulator seed (3)")
    parser.add_argument("--reports", type=int, default=2000, help="simulated reports (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all texts (5)")
    parser.add_argument("--against", metavar="REV", help="also measure classify.py of REV")
    parser.add_argument("--texts", type=Path, help="the texts of this labelled TSV instead")
    args = parser.parse_args(argv)
    if args.texts is not None:
        if not args.texts.is_file():
            parser.error(f"--texts: no such file: {args.texts}")
        texts = [example.text for example in load_tsv(args.texts)]
        kind = f"texts of {args.texts.name}"
    else:
        texts, kind = report_texts(args.seed, args.reports), "SUBMIT texts"
    modules = [classify]
    functions: dict[str, Callable[[str], Any]] = {"working tree": classify.classify_rules}
    if args.against:
        modules.append(module_at(args.against))
        functions[args.against] = modules[-1].classify_rules
    mean = sum(map(len, texts)) / max(1, len(texts))
    print(f"{len(texts):,} {kind}, {mean:.1f} characters on average")

    def reset() -> None:
        for module in modules:
            forget(module)

    results = measure(functions, texts, args.rounds, reset)
    info = classify.read_clause.cache_info()  # of the last round (cache_clear resets it)
    print(f"clause cache, one round: {info.misses:,} clauses read, {info.hits:,} repeats")
    for name, per_round in results.items():
        rounds = " ".join(f"{us:.1f}" for us in per_round)
        print(f"{name}: {statistics.median(per_round):.1f} µs per report (CPU; rounds {rounds})")
    if args.against:
        ratios = [
            o / n for o, n in zip(results[args.against], results["working tree"], strict=True)
        ]
        print(
            f"speed-up against {args.against}: {statistics.median(ratios):.2f}x (median of rounds)"
        )
    median = statistics.median(results["working tree"])
    print(f"target {TARGET_US:.0f} µs per report: {'met' if median <= TARGET_US else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
