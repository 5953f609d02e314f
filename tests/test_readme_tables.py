"""The README's metric tables say what the manifests say (one source for each number)."""

from __future__ import annotations

from scripts.readme_tables import COMMAND, README, TABLES, render


def test_readme_tables_match_the_manifests():
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, f"README tables are stale: run {COMMAND}"


def test_every_generated_table_is_in_the_readme():
    text = README.read_text(encoding="utf-8")
    assert all(f"<!-- table: {name} -->" in text for name in TABLES)


def test_an_empty_block_is_filled_without_swallowing_the_next():
    from scripts.readme_tables import render

    text = "a\n<!-- table: calibration -->\n<!-- /table -->\nb\n<!-- table: crossval -->\nold\n"
    text += "<!-- /table -->\n"
    out = render(text)
    assert out.count("<!-- table:") == 2 and out.count("<!-- /table -->") == 2
    assert "\nb\n" in out and "old" not in out and render(out) == out
