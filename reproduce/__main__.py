"""Re-run the results rows of README.md and docs/ and compare them with the committed metrics.

    python -m reproduce --data ../shared/data/ravdess-speech-16k --whisper /tmp/whisper-base [--only ID ...]
    python -m reproduce --table corpora --data ../shared/data --whisper /tmp/whisper-base [--corpora C ...]
    python -m reproduce ... --update     # write the new metrics to reproduce/<table>/...
    python -m reproduce --readme         # render the results tables of README.md and docs/ from the committed files

``--table ravdess`` (the default) is the RAVDESS rows (``ravdess.yaml``; ``--data`` is the corpus folder);
``--table corpora`` every recipe of ``corpora.yaml`` on every corpus found in ``--data`` (the folder that
holds them). Every run is ``dvc exp run -n ID`` in one throwaway clone of this working tree (``--workdir``
keeps it, and its embedding cache, between calls). Exit status 1 when a run's numbers differ from the
committed ones (and ``--update`` was not given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from ser.evaluation.metrics import HEADLINE

from . import grid, render
from .table import ROWS_FILE, load_rows, metrics_file
from .workspace import ROOT, clone_worktree, run, source_commit, stages_run

LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "xgboost", "librosa", "opensmile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=["ravdess", "corpora", "crosscorpus"], default="ravdess",
                        help="ravdess: the RAVDESS rows; corpora: every recipe on every corpus; crosscorpus: models "
                             "tested on corpora they never heard")
    parser.add_argument("--data", type=Path, help="the corpus folder (ravdess), or the folder holding the corpora")
    parser.add_argument("--whisper", type=Path, help="Whisper-base folder (../shared/tools/whisper_base_offline.py)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these rows only")
    parser.add_argument("--corpora", nargs="+", metavar="C", help="--table corpora: these corpora only")
    parser.add_argument("--workdir", type=Path, help="clone here and keep it (default: a temporary folder)")
    parser.add_argument("--update", action="store_true", help="write the new metrics as the committed ones")
    parser.add_argument("--readme", action="store_true",
                        help="render the results tables of README.md and docs/ from the committed files")
    args = parser.parse_args(argv)
    if args.readme:
        changed = render.render_all()
        print(f"results tables rendered from the committed files; rewritten: "
              f"{', '.join(str(p.relative_to(ROOT)) for p in changed) or 'none'}")
        return 0
    runs = _runs(parser, args)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp) / "clone"
        clone_worktree(work)  # a kept --workdir is brought up to this tree's files
        return _run(work, runs, args)


def _runs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[dict]:
    """Every run asked for: {name, record (path), sets (-S values), whisper}."""
    if args.data is None or not args.data.is_dir():
        parser.error(f"--data: {args.data} is not a folder: give the corpus folder (or, --table corpora, the "
                     "folder that holds the corpora)")
    data, whisper = args.data.resolve(), args.whisper.resolve() if args.whisper else ""
    spec = load_rows(ROWS_FILE) if args.table == "ravdess" else \
        grid.load_grid(grid.CROSS_FILE if args.table == "crosscorpus" else grid.GRID_FILE)
    rows = [r for r in spec["rows"] if not args.only or r["id"] in args.only]
    if args.only and len(rows) != len(args.only):
        parser.error(f"--only: unknown row id(s) {sorted(set(args.only) - {r['id'] for r in rows})}")
    if any(r.get("whisper") for r in rows) and (args.whisper is None or not args.whisper.is_dir()):
        parser.error(f"--whisper: {args.whisper} is not a folder: build Whisper-base with "
                     "`python ../shared/tools/whisper_base_offline.py /tmp/whisper-base`")
    if args.table == "ravdess":
        return [{"name": r["id"], "record": metrics_file(spec, r["id"]),
                 "sets": [s.format(data=data, whisper=whisper) for s in
                          [*spec["R"], *(spec["W"] if r.get("whisper") else []), *r["set"]]]} for r in rows]
    known = {c["id"]: c for c in spec["corpora"]}
    unknown = sorted(set(args.corpora or []) - set(known))
    if unknown:
        parser.error(f"--corpora: unknown corpus id(s) {unknown}; corpora.yaml has {sorted(known)}")
    present = []  # every corpus found: a model's test corpora ({others}) whichever corpora --corpora runs
    for c in spec["corpora"]:
        if not (data / c["folder"]).is_dir():
            if args.corpora and c["id"] in args.corpora:
                parser.error(f"--corpora {c['id']}: {data / c['folder']} is not a folder")
            print(f"{c['id']}: {data / c['folder']} not found, skipped", flush=True)
            continue
        present.append(c)
    corpora = [c for c in present if not args.corpora or c["id"] in args.corpora]
    runs = [{"name": f"{c['id']}-{r['id']}", "record": grid.record_file(spec, c["id"], r["id"]),
             "sets": grid.overrides(spec, c, r, data, whisper, present)}
            for c in corpora for r in rows if not r.get("pooled")]
    return runs + [{"name": f"{grid.POOLED}-{r['id']}", "record": grid.record_file(spec, grid.POOLED, r["id"]),
                    "sets": grid.overrides(spec, corpora[0], r, data, whisper, corpora)}
                   for r in rows if r.get("pooled") and len(corpora) >= 2]


def _run(work: Path, runs: list[dict], args: argparse.Namespace) -> int:
    source, differ = source_commit(), []
    for job in runs:
        command = ["dvc", "exp", "run", "-n", job["name"], *[a for s in job["sets"] for a in ("-S", s)]]
        print(f"{job['name']}: {' '.join(command)}", flush=True)
        run(work, "dvc", "exp", "remove", job["name"], check=False)  # a rerun in a kept --workdir replaces it
        run(work, "git", "checkout", "--", "params.yaml")  # exp run leaves its -S values there: start from the defaults
        started, load = time.monotonic(), os.getloadavg()[0]
        log = run(work, *command, timeout=4 * 3600)
        seconds, load = time.monotonic() - started, (load, os.getloadavg()[0])
        metrics = json.loads((work / "results/metrics.json").read_text())
        extraction = json.loads((work / "embeddings/features.json").read_text()).get("extraction", {})
        path = Path(job["record"])
        old = json.loads(path.read_text()) if path.is_file() else None
        same = old is not None and all(old["metrics"].get(m) == metrics[m] for m in HEADLINE)
        shown = "  ".join(f"{m} {metrics[m]:.4f}" + ("" if old is None else f" (was {old['metrics'].get(m)})")
                          for m in HEADLINE)
        print(f"{job['name']}: {'same as committed' if same else 'DIFFERS'}: {shown}  ({seconds:.0f} s)", flush=True)
        if args.update:
            record = {"id": job["name"], "command": " ".join(command[:3] + command[5:]), "source_commit": source,
                      "measured": dt.date.today().isoformat(), "wall_seconds": round(seconds, 1),
                      "load_average": [round(v, 2) for v in load],  # before and after: a busy machine is slower
                      # vectors this run computed (the embedding cache of the clone serves the later runs)
                      "extracted": int(extraction.get("computed", 0)) if "extract" in stages_run(log) else 0,
                      "environment": environment(),
                      "metrics": metrics}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2) + "\n")
        elif not same:
            differ.append(job["name"])
    if differ:
        print(f"{len(differ)} run(s) differ from the committed metrics: {', '.join(differ)}")
    return 1 if differ else 0


def environment() -> dict:
    """Where a record was measured: Python, the libraries that compute the numbers, cores, threads and CPU."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else \
        platform.processor()
    return {"python": platform.python_version(), "libraries": {n: version(n) for n in LIBRARIES},
            "cpus": os.cpu_count(), "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "cpu": cpu, "machine": platform.machine()}


if __name__ == "__main__":
    sys.exit(main())
