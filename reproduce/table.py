"""The RAVDESS results table (docs/results.md), rendered from the committed metrics of each row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROWS_FILE = HERE / "ravdess.yaml"
COLUMNS = ("features", "classifier", "augmentation", "protocol", "accuracy", "UAR, pooled",
           "UAR, fold mean ± std", "UAR 95% CI (speakers)", "macro F1", "weighted F1", "command")


def load_rows(path: Path = ROWS_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def metrics_file(spec: dict, row_id: str) -> Path:
    return HERE / spec["corpus"] / f"{row_id}.json"


def committed(spec: dict, row_id: str) -> dict | None:
    path = metrics_file(spec, row_id)
    return json.loads(path.read_text()) if path.is_file() else None


def _protocol(context: dict) -> str:
    text = context["protocol"]
    return f"{text} (leaky)" if "speakers shared" in text else text


def _interval(metrics: dict) -> str:
    """The bootstrap 95% interval of UAR, resampling speakers (``ci95.over`` says when it resampled clips);
    '-' for a row measured before metrics.json had one."""
    ci = metrics.get("ci95")
    if ci is None:
        return "-"
    if "none" in ci:
        return "none (too few speakers)"
    over = "" if ci["over"] == "speakers" else f" ({ci['over']})"
    return f"{ci['uar_low']:.3f}-{ci['uar_high']:.3f}{over}"


def _command(spec: dict, row: dict) -> str:
    prefix = "$R $W" if row.get("whisper") else "$R"
    return f"`dvc exp run {prefix} {' '.join('-S ' + s for s in row['set'])}`"


def readme_table(spec: dict) -> str:
    """The markdown table of every row that has committed metrics, in the order of the rows file."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in spec["rows"]:
        record = committed(spec, row["id"])
        if record is None:
            continue
        m = record["metrics"]
        cells = [row["features"], row["classifier"], row.get("augmentation", "none"), _protocol(m["context"]),
                 f"{m['accuracy']:.3f}", f"{m['uar']:.3f}", f"{m['cv']['uar_mean']:.3f} ± {m['cv']['uar_std']:.3f}",
                 _interval(m),
                 f"{m['macro_f1']:.3f}", f"{m['weighted_f1']:.3f}", _command(spec, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markers(corpus: str) -> tuple[str, str]:
    return f"<!-- results:{corpus} (python -m reproduce --readme) -->", f"<!-- /results:{corpus} -->"


def replace_table(text: str, corpus: str, table: str) -> str:
    """``text`` with the block between the corpus' markers replaced by ``table``."""
    start, end = markers(corpus)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"the page has no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{table}\n{end}", text)


def table_in(text: str, corpus: str) -> str:
    """The table between the corpus' markers in ``text``."""
    start, end = markers(corpus)
    return text.split(start, 1)[1].split(end, 1)[0].strip()
