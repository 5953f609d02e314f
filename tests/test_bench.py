"""The benchmark's report: the machine facts it records and the table it prints."""

from __future__ import annotations

import pytest

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
            "peak_mb": 860.0,
            "resident_mb": 858.0,
            "first_s": 30.0,
            "first_peak_mb": 861.0,
            "first_resident_mb": 859.0,
            "first_child_peak_mb": 1500.0,
        },
        "cli_fresh_s": 12.0,
        "cli_fresh_runs_s": [11.0, 12.0, 13.0],
    }
    table = bench.format_table(r)
    assert "clip_vit_b16 (fp32), xception (bf16)" in table
    assert "capped by ONEDNN_MAX_CPU_ISA" in table
    assert "4.00 s (3.50-4.50)" in table
    assert "6.0 s (5.5-7.0" in table and "30.0 s" in table
    assert "859 MiB resident, peak 861 (cached start: 858, peak 860)" in table
    assert "the freezing child's peak 1500 MiB" in table
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


def test_the_table_shows_each_memory_run_and_the_higher_figure():
    run = {
        "main_mb": 1400.0,
        "decoder_mb": 100.0,
        "seconds": 190.0,
        "app_peak_while_decoding_mb": 1300.0,
        "concurrent_peak_bound_mb": 1400.0,
    }
    r = {
        "machine": {"cpu_model": "T", "cpu_flags": [], "cpu_path": "AVX2", "isa_cap": None},
        "precision": {},
        "end_to_end_s_720p_10s": 1.0,
        "end_to_end_s_1080p_10s": 1.0,
        "stages": {},
        "scoring": {"peak_matmul_gflops": {}, "per_model": {}},
        "reaggregate_ms": 0.1,
        "cold_start": {
            "total_s": 1,
            "runs_s": [1],
            "imports_s": 0,
            "load_models_s": 1,
            "first_s": 9,
        },
        "peak_rss_mb_1080p_10min": 1550.0,
        "memory_run": {
            "minutes": 10,
            "runs": [
                run,
                {**run, "main_mb": 1450.0, "rss_anon_max_mb": 900, "rss_file_end_mb": 480},
            ],
        },
    }
    r["machine"].update(cpu_threads=2, torch="x", allocator="tcmalloc")
    r["scoring"].update(n_crops=1, ms_per_crop=1, ideal_ms_per_crop=1, achieved_gflops=1)
    r["scoring"]["achieved_over_peak"] = 1.0
    r.update(cli_fresh_s=1.0, cli_fresh_runs_s=[1.0])
    table = bench.format_table(r)
    assert "allocator tcmalloc" in table
    assert "(higher of 2 runs) | 1550 MiB |" in table
    assert "run 1: app 1400 MiB + decoder 100 MiB" in table
    assert "run 2: app 1450 MiB" in table and "at most 1400 MiB" in table
    # what the app's memory is made of, where the run recorded it (run 2 only)
    assert table.count("anonymous memory") == 1
    assert "anonymous memory at most 900 MiB (sampled), its mapped library files 480 MiB" in table


def test_resident_memory_splits_into_anonymous_and_mapped_files():
    """The memory run reports the anonymous part (what the analysis allocates) apart from the
    mapped library files (whose resident share depends on the kernel)."""
    from detector.allocator import rss_mb

    anon, files, total = rss_mb("self", "RssAnon"), rss_mb("self", "RssFile"), rss_mb()
    assert anon > 0 and files > 0
    assert abs(anon + files + rss_mb("self", "RssShmem") - total) < 8  # MiB; read apart


def test_the_memory_child_reads_its_own_peak_not_its_parents():
    """getrusage's ru_maxrss in a child keeps the parent's memory at the fork; the benchmark's
    figure is the child's own VmHWM."""
    import subprocess
    import sys

    from detector.settings import PROJECT_ROOT

    parent = bytearray(300 * 2**20)
    parent[::4096] = b"\1" * len(parent[::4096])  # resident in this process
    code = (
        "import resource\n"
        "from detector.allocator import hwm_mb\n"
        "print(hwm_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    own, rusage = (float(x) for x in out.stdout.split())
    assert own < 150 < 300 <= rusage
    del parent


def test_a_partial_isa_cap_is_named_and_refused(monkeypatch):
    """oneDNN capped without MKL and torch's kernels mixes kernels no CPU has (MKL's bf16 matrix
    products stayed on AMX): it is named, and the measuring scripts refuse it."""
    from detector.scoring import device

    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    assert device.partial_isa_cap() is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    why = device.partial_isa_cap()
    assert "ATEN_CPU_CAPABILITY=avx512" in why and "MKL_ENABLE_INSTRUCTIONS=AVX512_E3" in why
    with pytest.raises(SystemExit, match="partial cap"):
        device.refuse_partial_isa_cap()
    for name, value in device.ISA_CAPS["AVX512_CORE_BF16"].items():
        monkeypatch.setenv(name, value)
    assert device.partial_isa_cap() is None
    device.refuse_partial_isa_cap()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # no emulated path to match
    assert device.partial_isa_cap() is None


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("scripts.check_clip_precision", ["--only", "bf16_frozen", "--isa", "AVX512_CORE_BF16"]),
        ("scripts.ship_identity", ["--check-bf16", "--isa", "AVX512_CORE_BF16"]),
        ("scripts.check_precision", ["xception", "--write", "--isa", "AVX512_CORE_BF16"]),
    ],
)
def test_the_precision_checks_rerun_themselves_with_the_whole_cap(monkeypatch, module, args):
    import importlib
    import subprocess

    calls = []

    def fake_run(cmd, env):
        calls.append((cmd, env))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert importlib.import_module(module).main(args) == 0
    ((cmd, env),) = calls
    assert cmd[1:] == ["-m", module, *args]
    for name, value in bench.ISA_CAPS["AVX512_CORE_BF16"].items():
        assert env[name] == value
