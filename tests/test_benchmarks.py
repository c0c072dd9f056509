"""The throughput benchmark runs end to end on a tiny setting and reports both loops."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "dcgan_throughput.py"


def test_throughput_benchmark_reports_both_loops(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [str(BENCHMARK), "--images", "64", "--batch-size", "16", "--epochs", "1", "--width", "8",
                                      "--workers", "0", "--matmul-size", "256", "--json", str(out)])
    runpy.run_path(str(BENCHMARK), run_name="__main__")
    printed = capsys.readouterr().out
    assert "classic DataLoader loop, num_workers=0" in printed and "ratio course / best classic" in printed
    numbers = json.loads(out.read_text())
    assert numbers["course"] > 0 and numbers["classic"]["0"] > 0
    assert abs(numbers["ratio"] - numbers["course"] / numbers["classic"]["0"]) < 1e-9
    assert numbers["step_gflop"] > 0 and numbers["matmul_gflops_per_s"] > 0 and "the step reaches" in printed
    assert numbers["fraction_of_matmul"] == pytest.approx(numbers["step_gflops_per_s"] / numbers["matmul_gflops_per_s"], rel=1e-12)


def test_cpu_thread_benchmark_times_every_workload(tmp_path, monkeypatch, capsys, one_thread):
    """(`one_thread` restores torch's thread count: the benchmark sets it.)"""
    script = BENCHMARK.parent / "cpu_threads.py"
    out = tmp_path / "threads.json"
    monkeypatch.setattr(sys, "argv", [str(script), "--threads", "1", "--warmup", "0", "--repeats", "1",
                                      "--json", str(out)])
    module = runpy.run_path(str(script), run_name="__main__")
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * len(module["WORKLOADS"]) and all(row["seconds"]["1"] > 0 for row in rows)
    assert "speed-up" in capsys.readouterr().out
