"""crosstest: models/ + the ``cross_corpus`` corpora -> results/cross_corpus.json (one metrics block per corpus,
merged into metrics.json by evaluate) and results/cross_corpus.csv (per-clip predictions; a clip that could not be
predicted has its reason in ``error``, and evaluate lists it in results/left_out.csv)."""

import pandas as pd

from ser.artifacts import read_table, write_csv, write_json
from ser.config import load_params
from ser.evaluation.cross_corpus import COLUMNS, evaluate_corpus
from ser.stage import run_stage


def main() -> None:
    params = load_params()
    training = read_table("data/manifest.csv") if params.cross_corpus else None
    blocks, predictions = {}, []
    for spec in params.cross_corpus:
        blocks[spec.name], clips = evaluate_corpus(params, spec, "models", training)
        predictions.append(clips)
    write_json("results/cross_corpus.json", blocks)
    table = pd.concat(predictions)[COLUMNS] if predictions else pd.DataFrame(columns=COLUMNS)
    write_csv("results/cross_corpus.csv", table)


if __name__ == "__main__":
    run_stage(main)
