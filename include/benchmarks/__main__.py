"""``python -m include.benchmarks NAME [options]``: run one benchmark (``--help`` after NAME for its options)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "plugins"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from include.benchmarks import benchmark_names  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = benchmark_names()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("benchmarks: " + ", ".join(names))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"include.benchmarks.{name}")
    module.main(rest)
    return 0


# Guarded: spawned child processes of the benchmarks import this module again as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
