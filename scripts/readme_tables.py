"""The README's metric tables, generated from the one source of each number: the manifests in
``weights/`` (each member's ``metrics``) and ``weights/ensemble.json`` (the default ensemble).

``python -m scripts.readme_tables`` prints them; ``--write`` replaces each table in README.md (and
in ``docs/performance-history.md``, the earlier benchmark runs) between its ``<!-- table: NAME -->``
and ``<!-- /table -->`` markers. ``tests/test_readme_tables.py`` fails when a document and the
manifests or benchmark files disagree.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable

from detector.settings import PROJECT_ROOT, WEIGHTS_DIR

README = PROJECT_ROOT / "README.md"
# the documents whose marked tables are generated: the README and the benchmark history
DOCUMENTS = (README, PROJECT_ROOT / "docs" / "performance-history.md")
COMMAND = "python -m scripts.readme_tables --write"

CROSSVAL_COLUMNS = (
    ("celebdf_vs_all_reals", "Celeb-DF fakes vs all reals"),
    ("ffpp_clips_vs_all_reals", "FF++ DF/FS/NT clips vs all reals"),
    ("all", "all fakes vs all reals"),
)
FRAME_MEMBERS = {
    "efficientnet_lite0": "EfficientNet-Lite0, ImageNet init, fine-tuned at 224 px on FF++ crops, "
    "real photos, SBI + FWA fakes",
    "xception": "Xception (the core paper's; Keras ImageNet init), entry flow frozen, 224 px, "
    "same data",
    "inception_resnet_v2": "Inception-ResNet-v2 (the core paper's), **random init** (no ImageNet "
    "weights exist offline), 160 px, same data, distilled from the two above (labels + teacher "
    "logits + teacher features); 51 min, stopped by its budget while still improving",
    "facenet_irv1": "Inception-ResNet-**v1** (FaceNet, face-pretrained), 160 px; undertrained",
}
MESONET = ("meso4_f2f", "mesoinception4_f2f", "meso4_df", "mesoinception4_df")
RATE_ROWS = (
    ("real", "real videos"),
    ("celebdf", "Celeb-DF fakes"),
    ("ffpp_clips", "FF++ DF/FS/NT clips"),
    ("all_fakes", "all fakes"),
)


def _manifest(name: str) -> dict:
    return json.loads((WEIGHTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _ensemble() -> dict:
    return json.loads((WEIGHTS_DIR / "ensemble.json").read_text(encoding="utf-8"))


def _auc(m: dict, ci: bool) -> str:
    text = f"{m['auc']:.2f}"
    if ci and m.get("ci95"):
        lo, hi = m["ci95"]
        text += f" ({lo:.2f}–{hi:.2f})"
    return text


def crossval_members() -> list[str]:
    """The registered members whose manifests record cross-dataset figures, in registry order."""
    from detector.models import list_models

    return [
        n
        for n in list_models()
        if (WEIGHTS_DIR / f"{n}.json").is_file() and "crossval" in _manifest(n).get("metrics", {})
    ]


def crossval_table() -> str:
    rows = ["| model | " + " | ".join(t for _, t in CROSSVAL_COLUMNS) + " |", "|---" * 4 + "|"]
    for name in crossval_members():
        auc = _manifest(name)["metrics"]["crossval"]["video_auc"]
        cells = [_auc(auc[k], ci=True) for k, _ in CROSSVAL_COLUMNS]
        cells[-1] = f"**{cells[-1]}**" if name == "clip_vit_b16" else cells[-1]
        pool = " (part of the set²)" if _manifest(name)["metrics"]["crossval"].get("pool") else ""
        rows.append(f"| `{name}`{pool} | " + " | ".join(cells) + " |")
    auc = _ensemble()["calibration"]["video_auc"]
    cells = [_auc(auc[k], ci=True) for k, _ in CROSSVAL_COLUMNS]
    cells[-1] = f"**{cells[-1]}**"
    rows.append("| **default ensemble** (below) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def calibration_table() -> str:
    rates = _ensemble()["calibration"]["rates"]
    rows = ['| | flagged "Manipulation likely" | "Inconclusive" |', "|---|---|---|"]
    for key, label in RATE_ROWS:
        r = rates[key]
        flagged = f"{r['flagged_count']} of {r['n']}"
        if r["n"] >= 20:
            flagged += f" ({r['flagged']:.1%}"
            if key == "all_fakes":
                lo, hi = r["flagged_ci95"]
                flagged += f", 95 % CI {lo:.0%}–{hi:.0%}"
            flagged += ")"
        if key == "all_fakes":
            flagged = f"**{flagged}**"
        rows.append(f"| {label} | {flagged} | {r['inconclusive']:.0%} |")
    return "\n".join(rows).replace("%", " %").replace("  %", " %")


def frame_members_table() -> str:
    rows = ["| model | what it is | test frame / video AUC¹ |", "|---|---|---|"]
    for name, what in FRAME_MEMBERS.items():
        m = _manifest(name)["metrics"]
        test = m["test"]
        cell = f"{test['frame_auc']:.3f} / {test['video_auc']:.3f}"
        if name == "inception_resnet_v2":
            cell += f" (val {m['val']['frame_auc']:.3f})"
        rows.append(f"| `{name}` | {what} | {cell} |")
    meso = {n: _manifest(n)["metrics"]["ffpp_c23_shared_frames"] for n in MESONET}
    cells = [
        f"{n.split('_')[-1].upper()}: "
        + ", ".join(
            f"{meso[x]['frame_auc']:.3f} / {meso[x]['video_auc_mean_p_fake']:.3f}"
            for x in MESONET
            if x.endswith(n.split("_")[-1])
        )
        for n in ("_f2f", "_df")
    ]
    rows.append(
        "| `meso4_*`, `mesoinception4_*` | MesoNet (Afchar et al. 2018), original weights "
        "converted; all 200 `ffpp_frames` videos, not the test ids | "
        + "; ".join(cells)
        + " (Meso4, MesoInception4)² |"
    )
    return "\n".join(rows)


BENCH_DIR = PROJECT_ROOT / "docs" / "bench"
# (what, key in the bench JSON, how it is shown, target in words, met?)
BENCH_TARGETS = (
    # the warm-clip target depends on the CPU path: ≤ 1 s native, ≤ 2 s with AVX2 only
    ("cold start, fresh process to ready", "cold_start_s", "{:.1f} s", "≤ 3 s", lambda v: v <= 3.0),
    ("`analyze` CLI call, fresh process", "cli_fresh_s", "{:.1f} s", "≤ 5 s", lambda v: v <= 5.0),
    (
        "scoring against the matmul peak of the precisions used",
        "achieved_over_peak",
        "{:.0%}",
        "≥ 60 %",
        lambda v: v >= 0.6,
    ),
    (
        "peak memory, 10-min 1080p clip, app + decoder (their two peaks added)",
        "peak_rss_mb_1080p_10min",
        "{:,.0f} MiB",
        "≤ 1,536 MiB",
        lambda v: v <= 1536,
    ),
    (
        "peak memory, 10-min 1080p clip, app + decoder at any one moment (bound)",
        "peak_rss_mb_1080p_10min_concurrent",
        "{:,.0f} MiB",
        "≤ 1,536 MiB",
        lambda v: v <= 1536,
    ),
    (
        "new verdict after changing weights",
        "reaggregate_ms",
        "{:.2f} ms",
        "≤ 50 ms",
        lambda v: v <= 50,
    ),
)


def bench_table(file: str, warm_target_s: float, path: str) -> Callable[[], str]:
    """The bench's own table of a committed run, and its figures against the targets."""

    def table() -> str:
        from scripts.bench import format_table

        run = json.loads((BENCH_DIR / file).read_text(encoding="utf-8"))
        warm = (
            "warm 10 s 720p clip, end to end",
            "end_to_end_s_720p_10s",
            "{:.2f} s",
            f"≤ {warm_target_s:g} s ({path})",
            lambda v: v <= warm_target_s,
        )
        return _targets(run, (warm, *BENCH_TARGETS)) + "\n\n" + format_table(run)

    return table


# The latest run on each CPU path the project has measured: (path, machine, bench JSON, warm target)
BENCH_PATHS = (
    ("AMX (bf16 on tiles)", "Intel Xeon, 2026-12-05i", "2026-12-05i-amx-xeon-run2.json", 1.0),
    ("AVX-512 BF16, no AMX", "AMD EPYC, 2026-12-06o", "2026-12-06o-avx512bf16-epyc.json", 1.0),
    (
        "AVX-512 VNNI, no BF16 (capped; float32)",
        "AMD EPYC, 2026-12-06o",
        "2026-12-06o-avx512bf16-epyc-capped-avx512vnni.json",
        1.0,
    ),
    (
        "AVX2 (capped; float32)",
        "AMD EPYC, 2026-12-06o",
        "2026-12-06o-avx512bf16-epyc-capped-avx2.json",
        2.0,
    ),
    (
        "AVX2 (capped; float32)",
        "Intel Xeon, 2026-12-05i",
        "2026-12-05i-amx-xeon-capped-avx2.json",
        2.0,
    ),
)


# the summary's columns after the warm clip, each judged by its target in BENCH_TARGETS
PATH_COLUMNS = (
    "cli_fresh_s",
    "cold_start_s",
    "achieved_over_peak",
    "peak_rss_mb_1080p_10min",
    "peak_rss_mb_1080p_10min_concurrent",
)


def bench_paths_table() -> str:
    """One row per CPU path: its latest run's figures, each missed target marked."""
    head = (
        "| CPU path | machine, run | warm 10 s 720p clip (≤ 1 s; AVX2 ≤ 2 s) "
        "| fresh `analyze` (≤ 5 s) | cold start (≤ 3 s) | scoring / matmul peak (≥ 60 %) "
        "| memory, 10-min 1080p: peaks added / at any one moment (≤ 1,536 MiB) |"
    )
    rows = [head, "|---" * 7 + "|"]
    targets = {key: (key, fmt, met) for _, key, fmt, _, met in BENCH_TARGETS}
    for path, machine, file, warm_target in BENCH_PATHS:
        run = json.loads((BENCH_DIR / file).read_text(encoding="utf-8"))
        warm = ("end_to_end_s_720p_10s", "{:.2f} s", lambda v, t=warm_target: v <= t)
        cells = []
        for key, fmt, met in (warm, *(targets[k] for k in PATH_COLUMNS)):
            value = run.get(key)
            if value is None:
                cells.append("not measured")
                continue
            text = fmt.format(value).replace("%", " %")
            cells.append(text if met(value) else f"**{text}** (missed)")
        cells[-2:] = [" / ".join(cells[-2:])]  # the two memory figures share a column
        rows.append(f"| {path} | {machine} (`{file}`) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _targets(run: dict, targets) -> str:
    rows = ["| target | measured | asked | met? |", "|---|---|---|---|"]
    for what, key, fmt, asked, met in targets:
        value = run.get(key)
        if value is None:  # e.g. the memory run, skipped in a capped rerun (--long-minutes 0)
            rows.append(f"| {what} | not measured in this run | {asked} | – |")
            continue
        rows.append(
            f"| {what} | {fmt.format(value).replace('%', ' %')} | {asked} | "
            f"{'yes' if met(value) else 'no'} |"
        )
    return "\n".join(rows)


TABLES = {
    "bench-epyc-o": bench_table("2026-12-06o-avx512bf16-epyc.json", 1.0, "native"),
    "bench-epyc-o-capped-avx512vnni": bench_table(
        "2026-12-06o-avx512bf16-epyc-capped-avx512vnni.json", 1.0, "AVX-512 VNNI, no BF16"
    ),
    "bench-epyc-o-capped-avx2": bench_table(
        "2026-12-06o-avx512bf16-epyc-capped-avx2.json", 2.0, "AVX2"
    ),
    "bench-epyc-k": bench_table("2026-12-06-avx512bf16-epyc.json", 1.0, "native"),
    "bench-epyc-k-capped-avx512vnni": bench_table(
        "2026-12-06-avx512bf16-epyc-capped-avx512vnni.json", 1.0, "AVX-512 VNNI, no BF16"
    ),
    "bench-epyc-k-capped-avx2": bench_table(
        "2026-12-06-avx512bf16-epyc-capped-avx2.json", 2.0, "AVX2"
    ),
    "bench-amx-h": bench_table("2026-12-05h-amx-xeon.json", 1.0, "native"),
    "bench-amx-h-capped-avx2": bench_table("2026-12-05h-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-amx-i": bench_table("2026-12-05i-amx-xeon-run2.json", 1.0, "native"),
    "bench-amx-i-capped-avx2": bench_table("2026-12-05i-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-amx-g": bench_table("2026-12-05g-amx-xeon.json", 1.0, "native"),
    "bench-amx-g-capped-avx2": bench_table("2026-12-05g-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-amx-f": bench_table("2026-12-05f-amx-xeon.json", 1.0, "native"),
    "bench-amx-f-capped-avx2": bench_table("2026-12-05f-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-amx-e": bench_table("2026-12-05e-amx-xeon.json", 1.0, "native"),
    "bench-amx-e-capped-avx2": bench_table("2026-12-05e-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-amx-e-capped-avx512vnni": bench_table(
        "2026-12-05e-amx-xeon-capped-avx512vnni.json", 1.0, "AVX-512 VNNI, no BF16"
    ),
    "bench-amx": bench_table("2026-12-05c-amx-xeon.json", 1.0, "native"),
    "bench-amx-capped-avx512bf16": bench_table(
        "2026-12-05c-amx-xeon-capped-avx512bf16.json", 1.0, "AVX-512 BF16, no AMX"
    ),
    "bench-amx-capped-avx2": bench_table("2026-12-05c-amx-xeon-capped-avx2.json", 2.0, "AVX2"),
    "bench-avx512bf16": bench_table("2026-12-05b-avx512bf16-epyc.json", 1.0, "native"),
    "bench-capped-avx2": bench_table("2026-12-05b-avx512bf16-epyc-capped-avx2.json", 2.0, "AVX2"),
    "bench-avx2": bench_table("2026-12-03-avx2-epyc.json", 2.0, "AVX2"),
    "bench-paths": bench_paths_table,
    "crossval": crossval_table,
    "calibration": calibration_table,
    "frame-members": frame_members_table,
}
# a marked block; its body may be empty and never runs into the next block
_BLOCK = re.compile(
    r"(<!-- table: ([\w-]+) -->\n)((?:(?!<!-- table:).)*?)\n?(<!-- /table -->)", re.S
)


def render(readme: str) -> str:
    """README text with every marked table replaced by its generated version."""
    return _BLOCK.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + "\n" + m.group(4), readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write", action="store_true", help="update README.md and the performance history in place"
    )
    args = parser.parse_args(argv)
    if args.write:
        for doc in DOCUMENTS:
            doc.write_text(render(doc.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        for name, make in TABLES.items():
            print(f"<!-- table: {name} -->\n{make()}\n<!-- /table -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
