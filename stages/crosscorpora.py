"""crosscorpora: the ``cross_corpus`` corpora -> data/cross_corpora.json (a fingerprint of each one's files).

Runs every time (``always_changed``: the corpora live outside the repository, where DVC does not look) and
takes seconds: it lists each corpus and stats its files. crosstest depends on the file, so it re-runs exactly
when a test corpus changed (files added, removed, replaced or relabelled) or its entry did.
"""

from ser.artifacts import write_json
from ser.config import load_params
from ser.evaluation.cross_corpus import fingerprint
from ser.stage import run_stage


def main() -> None:
    params = load_params()
    write_json("data/cross_corpora.json", {spec.name: fingerprint(params, spec) for spec in params.cross_corpus})


if __name__ == "__main__":
    run_stage(main)
