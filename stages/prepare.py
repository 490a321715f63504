"""prepare: corpus -> data/manifest.csv (usable clips), data/excluded.csv, data/prepare.json."""

from ser.artifacts import write_csv, write_json
from ser.config import load_params
from ser.corpora.manifest import prepare
from ser.stage import run_stage


def main() -> None:
    params = load_params(need_data=True)
    manifest, excluded, summary = prepare(params)
    write_csv("data/excluded.csv", excluded)
    write_json("data/prepare.json", summary)
    write_csv("data/manifest.csv", manifest)


if __name__ == "__main__":
    run_stage(main)
