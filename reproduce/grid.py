"""The benchmark across corpora (``corpora.yaml``): every recipe on every corpus, rendered as one table of
recipes x corpora from the committed records ``reproduce/corpora/<corpus>/<recipe>.json``."""

from __future__ import annotations

import json
from pathlib import Path

from ser.evaluation.bootstrap import MIN_SPEAKERS

from .table import HERE, load_rows

GRID_FILE = HERE / "corpora.yaml"


CROSS_FILE = HERE / "crosscorpus.yaml"
POOLED = "pooled"  # the record folder of the runs on all corpora pooled (rows with pooled: true)


def load_grid(path: Path = GRID_FILE) -> dict:
    return {**load_rows(path), "table": path.stem}


def record_file(spec: dict, corpus: str, row_id: str) -> Path:
    return HERE / spec.get("table", "corpora") / corpus / f"{row_id}.json"


def record(spec: dict, corpus: str, row_id: str) -> dict | None:
    path = record_file(spec, corpus, row_id)
    return json.loads(path.read_text()) if path.is_file() else None


def entries(corpora: list[dict], data: Path, labels: list[str] | None = None) -> str:
    """Corpora as a params.yaml list for ``-S`` (``cross_corpus`` with ``labels``, or ``multi.corpora``)."""
    scored = f", labels: [{', '.join(labels)}]" if labels else ""
    return "[" + ", ".join(f"{{name: {c['id']}, dataset: {c['dataset']}, dir: {Path(data) / c['folder']}{scored}}}"
                           for c in corpora) + "]"


def overrides(spec: dict, corpus: dict, row: dict, data: Path, whisper: Path | str,
              present: list[dict] | None = None) -> list[str]:
    """The ``-S`` values of one run: R for the corpus, W for the Whisper-base recipes, then the recipe's.
    ``{others}`` is every other corpus present as cross_corpus test corpora, ``{pool}`` all of them pooled."""
    present = present if present is not None else spec["corpora"]
    labels = spec.get("labels")
    values = {"dataset": corpus["dataset"], "data": Path(data) / corpus["folder"], "whisper": whisper,
              "labels": f"[{','.join(labels)}]" if labels else "",
              "others": entries([c for c in present if c["id"] != corpus["id"]], data, labels),
              "pool": entries(present, data)}
    return [s.format(**values) for s in [*spec["R"], *(spec["W"] if row.get("whisper") else []), *row["set"]]]


def _cell(m: dict) -> str:
    """UAR pooled, and its speaker-bootstrap interval where enough speakers make it mean something."""
    ci = m.get("ci95") or {}
    if ci.get("over") == "speakers" and m["context"]["speakers"] >= MIN_SPEAKERS:
        return f"{m['uar']:.3f} ({ci['uar_low']:.2f}-{ci['uar_high']:.2f})"
    return f"{m['uar']:.3f}"


def _oracle(spec: dict, corpus: str) -> tuple[str, float] | None:
    """The fixed-layer row with the best UAR on ``corpus`` (it looks at the test folds: a reference, not a recipe)."""
    scored = [(r, record(spec, corpus, r)) for r in spec.get("oracle", [])]
    scored = [(r, rec["metrics"]["uar"]) for r, rec in scored if rec]
    return max(scored, key=lambda pair: pair[1]) if scored else None


def grid_tables(spec: dict) -> str:
    """Markdown: the corpora (with their protocol), UAR of every recipe on every corpus with the mean over the
    corpora that have all rows, and the wall time of each run."""
    corpora = _corpora(spec)
    lines = ["| corpus | language | clips | speakers | classes | protocol |", "|---|---|---|---|---|---|"]
    for c in corpora:
        m = next(rec["metrics"] for r in spec["rows"] if (rec := record(spec, c["id"], r["id"])))
        x = m["context"]
        lines.append(f"| {c['name']} | {c['language']} | {x['clips']} | {x['speakers']} | {x['classes']} | "
                     f"{x['protocol']} |")
    lines += ["", uar_table(spec)]
    oracle = [_oracle(spec, c["id"]) for c in corpora]
    if all(oracle) and oracle:
        best = [f"{uar:.3f} ({rid.removeprefix('whisper-').removesuffix('-svm')})" for rid, uar in oracle]
        mean = sum(uar for _, uar in oracle) / len(oracle)
        lines.append("| *oracle: the best fixed layer + SVM of each corpus, picked on its test folds* | "
                     + " | ".join(best) + f" | {mean:.3f} | (not a recipe: it peeks) |")
    names = [c["name"] for c in corpora]
    lines += ["", "| wall time of the run (s) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in spec["rows"]:
        recs = [record(spec, c["id"], row["id"]) for c in corpora]
        if any(recs):
            lines.append(f"| {row['id']} | " + " | ".join(_time(r) for r in recs) + " |")
    return "\n".join(lines)


def headline_table(spec: dict) -> str:
    """Markdown: UAR of the recipes ``spec['headline']`` names on every corpus (the README's results table)."""
    return uar_table(spec, spec["headline"])


def uar_table(spec: dict, row_ids: list[str] | None = None) -> str:
    """Markdown: UAR of each recipe (all, or ``row_ids`` in their order) on every corpus, their mean where every
    corpus has a record, and the command."""
    corpora = _corpora(spec)
    rows = spec["rows"] if row_ids is None else [next(r for r in spec["rows"] if r["id"] == i) for i in row_ids]
    lines = ["| recipe | " + " | ".join(c["name"] for c in corpora) + " | mean | command (after `$R`) |",
             "|---|" + "---|" * (len(corpora) + 2)]
    for row in rows:
        recs = [record(spec, c["id"], row["id"]) for c in corpora]
        if not any(recs):
            continue
        cells = [_cell(r["metrics"]) if r else "-" for r in recs]
        mean = f"{sum(r['metrics']['uar'] for r in recs) / len(recs):.3f}" if all(recs) else "-"
        prefix = "$W " if row.get("whisper") else ""
        command = f"`{prefix}{' '.join('-S ' + s for s in row['set'])}`"
        lines.append(f"| {row['recipe']} | " + " | ".join(cells) + f" | {mean} | {command} |")
    return "\n".join(lines)


def _corpora(spec: dict) -> list[dict]:
    return [c for c in spec["corpora"] if any(record(spec, c["id"], r["id"]) for r in spec["rows"])]


def _time(rec: dict | None) -> str:
    if not rec or "wall_seconds" not in rec:
        return "-"
    extracted = rec.get("extracted", 0)
    return f"{rec['wall_seconds']:.0f}" + (f" (extracted {extracted} vectors)" if extracted else "")


def matrix_tables(spec: dict) -> str:
    """Markdown: per row kind, UAR of a model trained on the row corpus (or, pooled, on all the others) tested on
    the column corpus, the mean over the cells, and the share of the most predicted class (balanced test corpora
    would give 25% each: a share near 100% is one class for everything)."""
    names = {c["id"]: c["name"] for c in spec["corpora"]}
    lines = []
    for row in spec["rows"]:
        cells, shares = {}, {}
        if row.get("pooled"):
            rec = record(spec, POOLED, row["id"])
            if rec:
                for test, m in rec["metrics"].get("per_corpus", {}).items():
                    cells[("pooled", test)] = m["uar"]
        else:
            for c in spec["corpora"]:
                rec = record(spec, c["id"], row["id"])
                for test, block in (rec["metrics"].get("cross_corpus", {}) if rec else {}).items():
                    cells[(c["id"], test)] = block["uar"]
                    shares[(c["id"], test)] = block.get("most_predicted_share")
        if not cells:
            continue
        tests = [c["id"] for c in spec["corpora"] if any(t == c["id"] for _, t in cells)]
        trains = list(dict.fromkeys(t for t, _ in cells))
        lines += [f"**{row['recipe']}** (`{' '.join('-S ' + s for s in row['set'])}`)", "",
                  "| trained on | " + " | ".join(f"tested on {names[t]}" for t in tests) + " | mean |",
                  "|---|" + "---|" * (len(tests) + 1)]
        for train in trains:
            label = "the other three (each column: the corpus held out)" if train == "pooled" else names[train]
            row_cells = [cells.get((train, t)) for t in tests]
            shown = [("-" if v is None else f"{v:.3f}" + (f" ({shares[(train, t)]:.0%})" if shares.get((train, t))
                                                          else "")) for v, t in zip(row_cells, tests)]
            values = [v for v in row_cells if v is not None]
            lines.append(f"| {label} | " + " | ".join(shown) + f" | {sum(values) / len(values):.3f} |")
        lines.append("")
    return "\n".join(lines).strip()
