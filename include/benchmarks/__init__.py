"""Benchmarks: ``python -m include.benchmarks NAME [--records N] [options]``, run from the repo root.

Each benchmark is a module of this package with ``main(argv) -> dict``; it starts fresh services,
runs one flow end to end, prints a readable table, and its LAST stdout line is one JSON object with at
least ``records``, ``seconds``, ``records_per_s``, ``sf_requests`` (emulator counters),
``requests_per_10k`` and ``peak_rss_mb`` (DESIGN.md, "Benchmarks").  ``harness.py`` holds what they
share; a new benchmark only adds its module (it is found by name, no registry to edit).
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

NOT_BENCHMARKS = frozenset({"harness"})  # helper modules of this package


def benchmark_names() -> list[str]:
    """The modules of this package that are benchmarks (public, not helpers)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not info.name.startswith("_") and info.name not in NOT_BENCHMARKS
    )
