"""The benchmark's report: the machine facts it records and the table it prints."""

from __future__ import annotations

from scripts import bench


def test_machine_facts_name_the_cpu_path_and_flags(monkeypatch):
    """On a CPU with AVX-512 BF16 capped to AVX2, the record says the capped path."""
    from detector.scoring import device

    monkeypatch.setattr(device, "cpu_flags", lambda: ("avx2", "fma", "avx512f", "avx512_bf16"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    m = bench.machine_facts()
    assert m["cpu_flags"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
    assert m["cpu_path"] == m["isa_cap"] == "AVX2"


def test_the_table_shows_precision_per_member_spread_cold_start_and_fresh_cli():
    r = {
        "machine": {
            "cpu_model": "Test CPU",
            "cpu_flags": ["avx2", "fma"],
            "cpu_path": "AVX2",
            "isa_cap": "AVX2",
            "cpu_threads": 2,
            "torch": "x",
        },
        "precision": {"clip_vit_b16": "fp32", "xception": "bf16"},
        "end_to_end_s_720p_10s": 4.0,
        "end_to_end_runs_s_720p_10s": [3.5, 4.0, 4.5],
        "end_to_end_s_1080p_10s": 4.2,
        "stages": {"faces_s": 1.0, "scoring_s": 3.0},
        "scoring": {
            "peak_matmul_gflops": {"bf16": 30.0, "fp32": 180.0},
            "n_crops": 64,
            "ms_per_crop": 300.0,
            "ideal_ms_per_crop": 200.0,
            "achieved_gflops": 120.0,
            "achieved_over_peak": 0.66,
            "per_model": {},
        },
        "reaggregate_ms": 0.1,
        "cold_start": {
            "total_s": 6.0,
            "runs_s": [5.5, 6.0, 7.0],
            "imports_s": 0.2,
            "load_models_s": 5.0,
            "first_s": 30.0,
        },
        "cli_fresh_s": 12.0,
        "cli_fresh_runs_s": [11.0, 12.0, 13.0],
    }
    table = bench.format_table(r)
    assert "clip_vit_b16 (fp32), xception (bf16)" in table
    assert "capped by ONEDNN_MAX_CPU_ISA" in table
    assert "4.00 s (3.50-4.50)" in table
    assert "6.0 s (5.5-7.0" in table and "30.0 s" in table
    assert "12.0 s (11.0-13.0)" in table
    assert "66 % of peak" in table and "bf16 30 / fp32 180 GFLOP/s" in table


def test_an_isa_cap_reruns_this_script_with_the_caps_set(monkeypatch):
    """``--isa`` must restart the bench itself (a module that exists) with the caps in its
    environment, before torch starts."""
    import importlib.util
    import subprocess

    calls = []

    def fake_run(cmd, env):
        calls.append((cmd, env))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    assert bench.main(["--isa", "AVX2", "--runs", "1"]) == 0
    ((cmd, env),) = calls
    assert cmd[1] == "-m" and importlib.util.find_spec(cmd[2]) is not None
    assert cmd[3:] == ["--isa", "AVX2", "--runs", "1"]
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["ATEN_CPU_CAPABILITY"] == "avx2"
