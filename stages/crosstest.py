"""crosstest: models/ + the ``cross_corpus`` corpora -> results/cross_corpus.json (one metrics block per corpus,
merged into metrics.json by evaluate) and results/cross_corpus.csv (per-clip predictions)."""

import pandas as pd

from ser.artifacts import write_csv, write_json
from ser.config import load_params
from ser.evaluation.cross_corpus import evaluate_corpus
from ser.stage import run_stage


def main() -> None:
    params = load_params()
    blocks, predictions = {}, []
    for spec in params.cross_corpus:
        blocks[spec.name], clips = evaluate_corpus(params, spec, "models")
        predictions.append(clips)
    write_json("results/cross_corpus.json", blocks)
    columns = ["corpus", "clip_id", "speaker", "actual", "predicted", "unknown"]
    write_csv("results/cross_corpus.csv", pd.concat(predictions) if predictions else pd.DataFrame(columns=columns))


if __name__ == "__main__":
    run_stage(main)
