"""Re-run the README's results rows and compare them with the committed metrics.

    python -m reproduce --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base [--only ID ...]
    python -m reproduce ... --update     # write the new metrics to reproduce/<corpus>/<id>.json
    python -m reproduce --readme         # render the README table from the committed files

Every row runs as ``dvc exp run -n ID`` in one throwaway clone of this working tree (``--workdir``
keeps it, and its embedding cache, between calls). Exit status 1 when a row's numbers differ from
the committed ones (and ``--update`` was not given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from ser.evaluation.metrics import HEADLINE

from .table import ROWS_FILE, committed, load_rows, metrics_file, readme_table, replace_table
from .workspace import ROOT, clone_worktree, run, source_commit

README = ROOT / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the corpus folder (data.dir of every row)")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these rows only")
    parser.add_argument("--workdir", type=Path, help="clone here and keep it (default: a temporary folder)")
    parser.add_argument("--update", action="store_true", help="write the new metrics as the committed ones")
    parser.add_argument("--readme", action="store_true", help="render README.md's table from the committed files")
    args = parser.parse_args(argv)
    spec = load_rows(ROWS_FILE)
    if args.readme:
        README.write_text(replace_table(README.read_text(), spec["corpus"], readme_table(spec)))
        print(f"README.md: {spec['corpus']} table rendered from {len(spec['rows'])} committed rows")
        return 0
    rows = [r for r in spec["rows"] if not args.only or r["id"] in args.only]
    if args.only and len(rows) != len(args.only):
        parser.error(f"--only: unknown row id(s) {sorted(set(args.only) - {r['id'] for r in rows})}")
    _require(parser, args, rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp) / "clone"
        clone_worktree(work)  # a kept --workdir is brought up to this tree's files
        return _run_rows(work, spec, rows, args)


def _require(parser: argparse.ArgumentParser, args: argparse.Namespace, rows: list[dict]) -> None:
    if args.data is None or not args.data.is_dir():
        parser.error(f"--data: {args.data} is not a folder: give the corpus folder")
    if any(r.get("whisper") for r in rows) and (args.whisper is None or not args.whisper.is_dir()):
        parser.error(f"--whisper: {args.whisper} is not a folder: build Whisper-base with "
                     "`python ../shared/tools/whisper_base_offline.py /tmp/whisper-base`")


def _run_rows(work: Path, spec: dict, rows: list[dict], args: argparse.Namespace) -> int:
    values = {"data": args.data.resolve(), "whisper": args.whisper.resolve() if args.whisper else ""}
    source = source_commit()
    differ = []
    for row in rows:
        sets = [s.format(**values) for s in [*spec["R"], *(spec["W"] if row.get("whisper") else []), *row["set"]]]
        command = ["dvc", "exp", "run", "-n", row["id"], *[a for s in sets for a in ("-S", s)]]
        print(f"{row['id']}: {' '.join(command)}", flush=True)
        run(work, "dvc", "exp", "remove", row["id"], check=False)  # a rerun in a kept --workdir replaces it
        run(work, "git", "checkout", "--", "params.yaml")  # exp run leaves its -S values there: start from the defaults
        run(work, *command, timeout=4 * 3600)
        metrics = json.loads((work / "results/metrics.json").read_text())
        old = committed(spec, row["id"])
        same = old is not None and all(old["metrics"].get(m) == metrics[m] for m in HEADLINE)
        shown = "  ".join(f"{m} {metrics[m]:.4f}" + ("" if old is None else f" (was {old['metrics'].get(m)})")
                          for m in HEADLINE)
        print(f"{row['id']}: {'same as committed' if same else 'DIFFERS'}: {shown}", flush=True)
        if args.update:
            record = {"id": row["id"], "command": " ".join(command[:3] + command[5:]), "source_commit": source,
                      "measured": dt.date.today().isoformat(), "metrics": metrics}
            path = metrics_file(spec, row["id"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2) + "\n")
        elif not same:
            differ.append(row["id"])
    if differ:
        print(f"{len(differ)} row(s) differ from the committed metrics: {', '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
