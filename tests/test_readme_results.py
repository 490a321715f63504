"""Every number in the results tables of the README and the docs comes from a committed file of reproduce/."""

from pathlib import Path

import pytest

from reproduce import grid, render
from reproduce.table import committed, load_rows, readme_table, replace_table, table_in
from reproduce.workspace import ROOT, clone_worktree, run, source_commit


def test_every_results_table_of_the_readme_and_the_docs_is_rendered_from_the_committed_records():
    """README.md and docs/ hold results tables only as rendered blocks, each equal to its rendering; the README has
    the headline table, the results page the RAVDESS and corpora tables, the cross-corpus page its matrices."""
    where = {path.relative_to(ROOT).as_posix(): render.blocks(path.read_text()) for path in render.pages()}
    assert where["README.md"] == ["headline"]
    assert where["docs/results.md"] == ["corpora", "ravdess"]
    assert where["docs/other-recordings.md"] == ["crosscorpus"]
    for page in where:
        assert not render.stale(ROOT / page), f"{page}: a results table differs from reproduce/: " \
            "run `python -m reproduce --readme`"


def test_every_results_row_has_its_committed_record():
    spec = load_rows()
    assert all(committed(spec, row["id"]) is not None for row in spec["rows"]), "a row has no committed metrics"
    spec = grid.load_grid()
    """Every corpus has a record of the default recipe (the one the defaults were decided on); a recipe not
    yet run on a corpus shows as '-' and leaves the mean out."""
    assert all(grid.record(spec, c["id"], "whisper-svm") for c in spec["corpora"]), \
        "the default recipe lacks a record on a corpus: python -m reproduce --table corpora --only whisper-svm"
    assert set(spec["headline"]) <= {r["id"] for r in spec["rows"]}
    for c in spec["corpora"]:
        for row in spec["rows"]:
            if not (record := grid.record(spec, c["id"], row["id"])):
                continue
            assert record["command"].startswith(f"dvc exp run -S dataset={c['dataset']} -S data.dir="), record
            assert all(f"-S {s}" in record["command"] for s in row["set"]), (c["id"], row["id"], record["command"])
            assert record["metrics"]["context"]["dataset"] == c["dataset"]


def test_a_changed_number_is_caught():
    spec = load_rows()
    table = readme_table(spec)
    page = (ROOT / "docs/results.md").read_text()
    text = replace_table(page, spec["corpus"], table.replace("| 0.", "| 1.", 1))
    assert table_in(text, spec["corpus"]) != table and render.rendered(text) == page
    with pytest.raises(ValueError, match="no <!-- results:x"):
        replace_table("no markers here", "x", table)


def test_every_committed_record_names_its_command_and_params():
    spec = load_rows()
    for row in spec["rows"]:
        record = committed(spec, row["id"])
        assert record["command"].startswith(f"dvc exp run -S dataset={spec['corpus']}"), record["command"]
        assert all(f"-S {s}" in record["command"] for s in row["set"]), (row["id"], record["command"])


def _repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    run(path, "git", "init", "-q", "-b", "main")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "init")
    return path


def test_a_kept_workdir_is_brought_up_to_the_source_tree(tmp_path):
    source = _repo(tmp_path / "src", {"a.py": "old", "gone.py": "x"})
    work = clone_worktree(tmp_path / "work", root=source)
    (work / "dvc_output.bin").write_text("cached result")  # untracked in the clone: kept
    (source / "a.py").write_text("new")
    (source / "gone.py").unlink()
    (source / "added.py").write_text("y")
    clone_worktree(work, root=source)
    assert (work / "a.py").read_text() == "new" and (work / "added.py").read_text() == "y"
    assert not (work / "gone.py").exists() and (work / "dvc_output.bin").exists()
    assert run(work, "git", "status", "--porcelain", "--untracked-files=no") == ""
    assert run(work, "git", "ls-files").split() == ["a.py", "added.py"]  # outputs there stay untracked


def test_source_commit_says_when_the_tree_is_not_the_commit(tmp_path):
    source = _repo(tmp_path / "src", {"a.py": "old"})
    head = run(source, "git", "rev-parse", "--short", "HEAD").strip()
    assert source_commit(source) == head
    (source / "a.py").write_text("edited")
    assert source_commit(source) == f"{head}-dirty"


def test_a_run_of_some_corpora_tests_on_every_other_corpus_found(tmp_path):
    """--corpora picks the models trained, not their test corpora: a RAVDESS model is tested on the others."""
    import argparse

    from reproduce.__main__ import _runs

    spec = grid.load_grid(grid.CROSS_FILE)
    for c in spec["corpora"]:
        (tmp_path / c["folder"]).mkdir()
    (tmp_path / "whisper").mkdir()
    args = argparse.Namespace(table="crosscorpus", data=tmp_path, whisper=tmp_path / "whisper", only=["single"],
                              corpora=["ravdess"])
    [run] = _runs(argparse.ArgumentParser(), args)
    tests = next(s for s in run["sets"] if s.startswith("cross_corpus="))
    assert run["name"] == "ravdess-single"
    assert all(f"name: {c}" in tests for c in ("emovo", "nemo", "urdu")) and "name: ravdess" not in tests, tests


def test_commands_in_a_workdir_never_reach_the_callers_repository(tmp_path, monkeypatch):
    """Under `git bisect run` (or a hook) GIT_DIR names the caller's repository: a workdir's `git init` and
    commits must still land in the workdir."""
    caller = tmp_path / "caller"
    caller.mkdir()
    run(caller, "git", "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(caller / ".git"))
    work = tmp_path / "work"
    work.mkdir()
    run(work, "git", "init", "-q")
    assert (work / ".git").is_dir()
    assert "bare = true" not in (caller / ".git" / "config").read_text()
