#!/usr/bin/env python3
"""Fail when a tunnel ratio (gostfast / refpeer) fell below its floor.

    python bench/tunnel.py --rounds 3 --cases ws,mws,wss,mwss --json tunnel.json
    python bench/check_floors.py tunnel.json [--warn-only]

A ratio is measured against the Go reference peer in the same run on the same
machine, so it travels between machines far better than a figure does. The
floors sit below what docs/performance.md records for these rows (bulk
throughput 1.3-4x, 64-byte round trips at parity on ws and mws, new
connections 0.4-0.9x under load, TLS rows lower), with room for a noisy
runner: a floor is broken by a regression, not by a bad minute. Rows not listed (tcp is
compared with a direct connection, not refpeer) and rows not measured are not
judged. ``--warn-only`` reports without failing (the short smoke run of
.ci/run, whose figures are too short to judge).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# case -> metric -> the least ratio gostfast / refpeer that passes
FLOORS: dict[str, dict[str, float]] = {
    "ws": {
        "throughput_MBps_1conn": 1.0,
        "throughput_MBps_8conn": 1.0,
        "rps_64B": 0.7,
        "conn_per_s": 0.35,
    },
    "mws": {
        "throughput_MBps_1conn": 1.0,
        "throughput_MBps_8conn": 1.0,
        "rps_64B": 0.7,
        "conn_per_s": 0.35,
    },
    "wss": {
        "throughput_MBps_1conn": 0.9,
        "throughput_MBps_8conn": 0.9,
        "rps_64B": 0.5,
        "conn_per_s": 0.3,
    },
    "mwss": {
        "throughput_MBps_1conn": 0.9,
        "throughput_MBps_8conn": 0.9,
        "rps_64B": 0.5,
        "conn_per_s": 0.3,
    },
}


def check(results: dict, floors: dict[str, dict[str, float]] = FLOORS) -> tuple[list[str], int]:
    """Report lines and how many measured ratios are below their floor."""
    lines = [f"{'case':<6} {'metric':<26} {'ratio':>7} {'floor':>7}"]
    below = 0
    for case, metrics in floors.items():
        ratios = results.get("cases", {}).get(case, {}).get("ratio", {})
        for metric, floor in metrics.items():
            if metric not in ratios:
                continue
            ratio = ratios[metric]
            verdict = "  BELOW FLOOR" if ratio < floor else ""
            below += ratio < floor
            lines.append(f"{case:<6} {metric:<26} {ratio:>7.2f} {floor:>7.2f}{verdict}")
    return lines, below


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("results", type=Path, help="bench/tunnel.py --json output")
    ap.add_argument("--warn-only", action="store_true", help="report, never fail")
    args = ap.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench/check_floors.py: {exc}", file=sys.stderr)
        return 2
    lines, below = check(results)
    print("\n".join(lines))
    if len(lines) == 1:
        print("bench/check_floors.py: no judged row in the results", file=sys.stderr)
        return 0 if args.warn_only else 2
    if below:
        print(f"\nbench/check_floors.py: {below} ratio(s) below the floor")
        return 0 if args.warn_only else 1
    print("\nbench/check_floors.py: every ratio at or above its floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
