"""The README's metric tables say what the manifests say (one source for each number)."""

from __future__ import annotations

from scripts.readme_tables import COMMAND, DOCUMENTS, README, TABLES, render


def test_readme_tables_match_the_manifests_and_bench_runs():
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        assert render(text) == text, f"{doc.name}'s tables are stale: run {COMMAND}"


def test_every_generated_table_is_in_a_document_and_the_summary_in_the_readme():
    text = "".join(doc.read_text(encoding="utf-8") for doc in DOCUMENTS)
    assert all(f"<!-- table: {name} -->" in text for name in TABLES)
    assert "<!-- table: bench-paths -->" in README.read_text(encoding="utf-8")


def test_an_empty_block_is_filled_without_swallowing_the_next():
    from scripts.readme_tables import render

    text = "a\n<!-- table: calibration -->\n<!-- /table -->\nb\n<!-- table: crossval -->\nold\n"
    text += "<!-- /table -->\n"
    out = render(text)
    assert out.count("<!-- table:") == 2 and out.count("<!-- /table -->") == 2
    assert "\nb\n" in out and "old" not in out and render(out) == out
