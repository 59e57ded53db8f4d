"""Single-use soak: the race tests of tests/e2e/test_races.py, many times over (issue 6).

    PYTHONPATH=. .venv/bin/python -m bench.soak [--trials 200] [--workers 4] [--backend sqlite|postgresql|both]
    make soak                                   (200 trials, 4 workers, both backends)

Against a real ``tokenward serve --workers N`` per backend (an SQLite file in a temporary folder; a fresh
database on the PostgreSQL server of TOKENWARD_TEST_PG, dropped afterwards), each trial fires 16 refreshes
of one refresh token, or 16 redemptions of one authorization code, all at once (tests/races.py). Printed per
backend and race: trials, how many successes the trials had (always exactly one is the goal), 5xx answers,
p50/p99 of the burst (first request sent to last answer) and of single requests, and the total time.

Violations — a trial without exactly one 200 and fifteen invalid_grant, any 5xx or unanswered request, a
refresh token that still works after its race, an active grant left at the end — are listed and make the
exit status 1; the temporary folder with the server log is then kept.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import dispose, new_server
from tests.races import CONCURRENCY, Race, Racecourse

from bench.machine import describe

SHOWN = 5  # violations printed per race (all are counted)


@dataclass
class Soak:
    backend: str
    race: str
    trials: int = 0
    successes: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    bursts: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, trial: int, race: Race) -> None:
        self.trials += 1
        self.successes[len(race.burst.successes)] += 1
        self.server_errors += race.burst.server_errors
        self.bursts.append(race.burst.seconds)
        self.requests.extend(a.seconds for a in race.burst.answers)
        self.violations.extend(f"trial {trial}: {p}" for p in race.problems)

    def report(self) -> str:
        dist = ", ".join(f"{n}×{count}" for n, count in sorted(self.successes.items()))
        return (f"{self.backend:<10} {self.race:<7} trials {self.trials:>4}  successes/trial {{{dist}}}  "
                f"5xx {self.server_errors}  burst p50 {ms(self.bursts, 0.5)} p99 {ms(self.bursts, 0.99)}  "
                f"request p50 {ms(self.requests, 0.5)} p99 {ms(self.requests, 0.99)}  total {self.seconds:.1f} s  "
                f"{'OK' if not self.violations else f'{len(self.violations)} VIOLATIONS'}")


def ms(values: list[float], q: float) -> str:
    """The nearest-rank percentile, in milliseconds."""
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000:.0f} ms"


def soak(backend: str, name: str, run: Callable[[], Race], trials: int) -> Soak:
    result = Soak(backend, name)
    started = time.monotonic()
    for trial in range(trials):
        result.add(trial, run())
        if (trial + 1) % 50 == 0 or trial + 1 == trials:
            print(f"  {backend} {name}: {trial + 1}/{trials} trials, {len(result.violations)} violations",
                  file=sys.stderr, flush=True)
    result.seconds = time.monotonic() - started
    return result


def soak_backend(backend: str, trials: int, workers: int, folder: Path) -> list[Soak]:
    server = new_server(folder / backend, backend)
    started = time.monotonic()
    server.start(workers=workers)
    print(f"  {backend}: serve --workers {workers} up in {time.monotonic() - started:.1f} s", file=sys.stderr)
    try:
        results = []
        for name in ("refresh", "code"):
            with Racecourse(server) as course:
                result = soak(backend, name, course.refresh if name == "refresh" else course.code, trials)
                left = course.active_grants()
                if left:
                    result.violations.append(f"{len(left)} grants still active after the soak")
            results.append(result)
        log = Soak(backend, "log")  # problems of the server itself, not of one race
        tracebacks = server.log_text().count("Traceback")
        if tracebacks:
            log.violations.append(f"{tracebacks} tracebacks in {server.log_path}")
        return [*results, log]
    finally:
        dispose(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per race and backend (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="tokenward serve --workers (default 4)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    print(f"# single-use soak: {CONCURRENCY} concurrent requests per trial, {args.trials} trials per race, "
          f"serve --workers {args.workers}")
    print(f"# {describe()}")
    folder = Path(tempfile.mkdtemp(prefix="tokenward-soak-"))
    started = time.monotonic()
    results = [r for backend in backends for r in soak_backend(backend, args.trials, args.workers, folder)]
    for r in results:
        if r.trials:
            print(r.report())
    violations = [(r, v) for r in results for v in r.violations]
    for r in results:
        for v in r.violations[:SHOWN]:
            print(f"VIOLATION {r.backend} {r.race}: {v}")
        if len(r.violations) > SHOWN:
            print(f"VIOLATION {r.backend} {r.race}: … and {len(r.violations) - SHOWN} more")
    print(f"# total {time.monotonic() - started:.1f} s; "
          f"{'no violations' if not violations else f'{len(violations)} violations; server logs kept in {folder}'}")
    if not violations:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
