"""The benchmark gates judge what they should: bench/compare.py and bench/check_floors.py.

Fed pytest-benchmark and bench/tunnel.py JSON written here; exit codes and the
names they report are asserted (0 pass, 1 regression, 2 unusable input).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


compare = _load("compare")
floors = _load("check_floors")


def _bench_json(path: Path, medians: dict[str, float]) -> Path:
    path.write_text(
        json.dumps(
            {"benchmarks": [{"name": k, "stats": {"median": v}} for k, v in medians.items()]}
        )
    )
    return path


BASE = {
    "test_memcpy_1mib_baseline": 30e-6,
    "test_apply_mask_1mib[compiled]": 15e-6,
    "test_apply_mask_1mib[pure]": 6e-3,
}


def test_same_ratio_on_a_slower_machine_passes(tmp_path, capsys):
    base = _bench_json(tmp_path / "base.json", BASE)
    # a machine 3x slower across the board: the memcpy ratio is unchanged
    now = _bench_json(tmp_path / "now.json", {k: v * 3 for k, v in BASE.items()})
    assert compare.main([str(base), str(now)]) == 0
    assert "no benchmark more than 50% slower" in capsys.readouterr().out


def test_twice_as_slow_kernel_fails_and_is_named(tmp_path, capsys):
    base = _bench_json(tmp_path / "base.json", BASE)
    slow = dict(BASE, **{"test_apply_mask_1mib[compiled]": 30e-6})
    now = _bench_json(tmp_path / "now.json", slow)
    assert compare.main([str(base), str(now)]) == 1
    assert "test_apply_mask_1mib[compiled]" in capsys.readouterr().out.splitlines()[-1]


def test_pure_twins_are_not_gated(tmp_path):
    base = _bench_json(tmp_path / "base.json", BASE)
    now = _bench_json(tmp_path / "now.json", dict(BASE, **{"test_apply_mask_1mib[pure]": 1.0}))
    assert compare.main([str(base), str(now)]) == 0


def test_missing_reference_is_an_input_error(tmp_path):
    base = _bench_json(tmp_path / "base.json", BASE)
    now = _bench_json(tmp_path / "now.json", {"test_apply_mask_1mib[compiled]": 1e-6})
    assert compare.main([str(base), str(now)]) == 2


def test_stored_baseline_has_the_reference_and_compiled_codecs():
    stored = compare.medians(BENCH / "baseline" / "codecs.json")
    assert compare.REFERENCE in stored
    assert any("compiled" in name for name in stored)


@pytest.mark.parametrize(("ratio", "code"), [(1.2, 0), (0.5, 1)])
def test_floors(tmp_path, ratio, code):
    path = tmp_path / "tunnel.json"
    path.write_text(json.dumps({"cases": {"ws": {"ratio": {"throughput_MBps_1conn": ratio}}}}))
    assert floors.main([str(path)]) == code
    assert floors.main([str(path), "--warn-only"]) == 0


def test_floors_without_a_judged_row_is_an_input_error(tmp_path):
    path = tmp_path / "tunnel.json"
    path.write_text(json.dumps({"cases": {"tcp": {"ratio": {"throughput_MBps_1conn": 0.5}}}}))
    assert floors.main([str(path)]) == 2
