"""route: classifier -> data/route.json, what the rest of the DAG runs on.

DVC re-runs a stage when a param it lists changes. ``extract`` and ``train`` depend on this file
instead of on ``classifier`` / ``finetune`` (they compute the same route from params.yaml, so they also
run by hand without it), and its content changes only when the route does:
frozen embeddings (the same file for svm, mlp, xgboost, attentive, cnn_bilstm, so switching among
them re-runs train alone, never extraction, and fine-tuning params never re-run them), or the
audio with the fine-tuning params (``classifier: finetune``: extract stores audio, seconds, instead
of an encoder's embeddings, and train fine-tunes).
"""

from ser.artifacts import write_json
from ser.config import load_params, route
from ser.stage import run_stage


def main() -> None:
    write_json("data/route.json", route(load_params()))


if __name__ == "__main__":
    run_stage(main)
