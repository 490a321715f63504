"""Every number in the README's results table comes from a committed file of reproduce/."""

from pathlib import Path

import pytest

from reproduce.table import committed, load_rows, readme_table, replace_table, table_in

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_is_rendered_from_the_committed_metrics():
    spec = load_rows()
    assert all(committed(spec, row["id"]) is not None for row in spec["rows"]), "a row has no committed metrics"
    assert table_in(README.read_text(), spec["corpus"]) == readme_table(spec), \
        "README.md's table differs from reproduce/: run `python -m reproduce --readme`"


def test_a_changed_number_is_caught():
    spec = load_rows()
    table = readme_table(spec)
    text = replace_table(README.read_text(), spec["corpus"], table.replace("| 0.", "| 1.", 1))
    assert table_in(text, spec["corpus"]) != table
    with pytest.raises(ValueError, match="no <!-- results:x"):
        replace_table("no markers here", "x", table)


def test_every_committed_record_names_its_command_and_params():
    spec = load_rows()
    for row in spec["rows"]:
        record = committed(spec, row["id"])
        assert record["command"].startswith(f"dvc exp run -S dataset={spec['corpus']}"), record["command"]
        assert all(f"-S {s}" in record["command"] for s in row["set"]), (row["id"], record["command"])
