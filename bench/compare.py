#!/usr/bin/env python3
"""Fail when a codec micro-benchmark got slower than the stored baseline.

    pytest bench/test_bench_wsframe.py bench/test_bench_smux.py --benchmark-enable \
        --benchmark-json=now.json
    python bench/compare.py bench/baseline/codecs.json now.json [--threshold 0.5]

Each benchmark's median is divided by the median of the 1 MiB memcpy
(``test_memcpy_1mib_baseline``) measured in the same run, for the baseline
and for the new results alike. A committed baseline is recorded on one
machine and compared on another (a GitHub runner); the memcpy ratio cancels
most of the difference in clock speed and memory bandwidth, which an absolute
comparison (pytest-benchmark's ``--benchmark-compare-fail``) would report as
a regression or hide one behind. Only the compiled codecs are gated (ids
containing ``compiled``): the pure twins are the specification, and their
speed moves with the interpreter, not with our code.

Exit status 1 when any gated benchmark's ratio grew by more than
``--threshold`` (0.5 = 50 % slower), 2 when the files do not fit together.
``--absolute`` compares raw medians (same machine, same interpreter).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REFERENCE = "test_memcpy_1mib_baseline"


def medians(path: Path) -> dict[str, float]:
    """``{benchmark name: median seconds}`` from a pytest-benchmark JSON file."""
    data = json.loads(path.read_text())
    return {b["name"]: b["stats"]["median"] for b in data.get("benchmarks", [])}


def compare(
    base: dict[str, float], now: dict[str, float], threshold: float, absolute: bool = False
) -> tuple[list[str], list[str]]:
    """Report lines and the names that regressed past ``threshold``."""
    if not absolute and (REFERENCE not in base or REFERENCE not in now):
        raise KeyError(f"{REFERENCE} missing: it is what the medians are divided by")
    ref_base = 1.0 if absolute else base[REFERENCE]
    ref_now = 1.0 if absolute else now[REFERENCE]
    unit = "median" if absolute else f"median / {REFERENCE}"
    lines = [f"{'benchmark':<52} {'baseline':>10} {'now':>10} {'change':>8}   ({unit})"]
    failed: list[str] = []
    for name in sorted(base):
        if name == REFERENCE or "compiled" not in name:
            continue
        if name not in now:
            lines.append(f"{name:<52} {'':>10} {'missing':>10}")
            failed.append(name)
            continue
        before, after = base[name] / ref_base, now[name] / ref_now
        change = after / before - 1.0
        verdict = "  REGRESSION" if change > threshold else ""
        lines.append(f"{name:<52} {before:>10.4g} {after:>10.4g} {change:>+8.1%}{verdict}")
        if change > threshold:
            failed.append(name)
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("baseline", type=Path)
    ap.add_argument("current", type=Path)
    ap.add_argument("--threshold", type=float, default=0.5, help="allowed slow-down (0.5 = 50%%)")
    ap.add_argument("--absolute", action="store_true", help="compare raw medians")
    args = ap.parse_args(argv)
    try:
        lines, failed = compare(
            medians(args.baseline), medians(args.current), args.threshold, args.absolute
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench/compare.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if failed:
        print(
            f"\nbench/compare.py: {len(failed)} benchmark(s) more than "
            f"{args.threshold:.0%} slower than {args.baseline}: {', '.join(failed)}"
        )
        return 1
    print(f"\nbench/compare.py: no benchmark more than {args.threshold:.0%} slower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
