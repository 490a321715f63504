"""predict: audio files/folders -> emotion per file (and per segment of long recordings).

    python -m stages.predict clip.wav recordings/ [--models models] [--output out.csv|out.json]
        [--models models.onnx [--precision int8]]  # an exported ONNX bundle (python -m stages.export)
        [--encoder PATH]  # the encoder folder of training, when it has moved
        [--denoiser PATH]  # the Demucs checkpoint of training (preprocess.denoise: demucs), when it has moved
        [--speaker NAME | --speakers speakers.csv]  # models trained with features.normalize: speaker
        [--adapt]  # models trained with features.normalize: corpus: the files are one recording set-up
        [--tta K]  # average each window with K augmented copies

Each prediction comes with its uncertainty (top probability, margin to the runner-up, normalised entropy)
and a novelty score; input above the model's novelty threshold is labelled ``unknown``, its class
probabilities still given (``closest`` names the top class).

Exit code: 0 all files predicted, 1 some failed (each says why), 2 usage or model error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ser.features.speaker_norm import MIN_CLIPS

log = logging.getLogger("stages.predict")


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="PATH", help="audio files and/or folders (searched recursively)")
    ap.add_argument("--models", default="models", help="trained model folder or exported ONNX bundle (default: models)")
    ap.add_argument("--output", "-o", help="write results to a .csv or .json file")
    ap.add_argument("--segment-seconds", type=positive, default=None,
                    help="window for long recordings (default: the longest training clip)")
    ap.add_argument("--batch-seconds", type=positive, default=None,
                    help="seconds of audio per feature-extraction batch (default: features.batch_seconds of training)")
    ap.add_argument("--top-db", type=positive, default=30.0,
                    help="silence threshold below the peak when splitting long recordings (default: 30)")
    ap.add_argument("--workers", type=int, default=2, help="audio reader threads (default: 2)")
    ap.add_argument("--device", help="neural extractors: auto | cuda | mps | cpu (default: as in training)")
    ap.add_argument("--encoder", metavar="PATH",
                    help="neural extractors: the training encoder's folder, when it is no longer where it was "
                         "trained (its weights must be the same)")
    ap.add_argument("--denoiser", metavar="PATH",
                    help="preprocess.denoise: demucs: the training checkpoint's file, when it has moved (the same "
                         "weights)")
    ap.add_argument("--allow-download", action="store_true",
                    help="a model trained on a hub encoder id: fetch the encoder from the Hugging Face hub when it "
                         "is not in the local cache (default: local files only)")
    ap.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                    help="an exported bundle (python -m stages.export): run its fp32 or int8 encoder (default: fp32)")
    ap.add_argument("--tta", type=int, default=0, metavar="K",
                    help="test-time augmentation: average each window with K augmented copies (the training run's "
                         "augment settings; K times slower)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--speaker", metavar="NAME",
                       help="models trained with features.normalize: speaker: every file is this one speaker")
    group.add_argument("--speakers", metavar="CSV",
                       help="models trained with features.normalize: speaker: a CSV with path and speaker columns "
                            "(relative paths from the CSV's folder, as in data.csv)")
    group.add_argument("--adapt", action="store_true",
                       help="models trained with features.normalize: corpus: the files are one recording set-up, "
                            f"standardised with their own statistics (transductive; at least {MIN_CLIPS['corpus']} "
                            "files' windows)")
    ap.add_argument("--quiet", "-q", action="store_true", help="do not print the table")
    args = ap.parse_args(argv)
    if args.tta < 0:
        ap.error(f"--tta {args.tta}: the number of augmented copies must be >= 0")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        ap.error(f"--output {args.output}: use a .csv or .json file name")
    return args


def speakers_of(args: argparse.Namespace, group_norm: str | None) -> str | dict[str, str] | None:
    """What a normalised model standardises together: --speaker NAME or {path: speaker} from --speakers for
    features.normalize: speaker, all the files for corpus (--adapt); an error unless the model needs it."""
    from ser.errors import ConfigError

    given = args.speaker or args.speakers
    if group_norm == "corpus":
        if not args.adapt:
            raise ConfigError(f"{args.models} was trained with features.normalize: corpus (transductive): the features "
                              "of a recording set-up are standardised with its own statistics; pass --adapt with a "
                              f"batch of at least {MIN_CLIPS['corpus']} files from one set-up")
        return "batch"
    if args.adapt:
        raise ConfigError(f"--adapt: {args.models} was not trained with features.normalize: corpus")
    if group_norm == "speaker" and not given:
        raise ConfigError(f"{args.models} was trained with features.normalize: speaker (transductive): each "
                          "speaker's features are standardised with several clips of that speaker; pass --speaker NAME "
                          "(all files one speaker) or --speakers FILE.csv (path,speaker)")
    if given and group_norm != "speaker":
        raise ConfigError(f"--speaker/--speakers: {args.models} was not trained with features.normalize: speaker")
    if not args.speakers:
        return args.speaker
    import pandas as pd

    try:
        table = pd.read_csv(args.speakers, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--speakers {args.speakers}: cannot read it as CSV: {err}") from None
    if not {"path", "speaker"} <= set(table.columns):
        raise ConfigError(f"--speakers {args.speakers}: needs path and speaker columns, has {list(table.columns)}")
    folder = Path(args.speakers).parent  # relative paths: against the CSV's folder, as in data.csv
    return {str((folder / p).resolve()): s for p, s in zip(table["path"], table["speaker"])}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)  # a usage error exits with 2 (argparse)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from ser.errors import SerError
    from ser.inference.output import PartialRows, format_row, rows, table_header, write_output
    from ser.inference.predict import Predictor

    try:
        options = {"batch_seconds": args.batch_seconds} if args.batch_seconds else {}
        predictor = Predictor.load(args.models, args.segment_seconds, args.device, args.encoder, args.denoiser,
                                   args.tta, args.allow_download, args.precision, top_db=args.top_db,
                                   workers=max(1, args.workers), **options)
    except SerError as err:
        log.error("%s", err)
        return 2
    labels = predictor.labels
    try:
        speakers = speakers_of(args, predictor.group_norm)
    except SerError as err:
        log.error("%s", err)
        return 2
    start, results = time.perf_counter(), []
    if not args.quiet:
        print(table_header(labels), flush=True)
    partial = PartialRows(args.output, labels) if args.output else None
    try:
        for result in predictor.predict(args.paths, speakers):
            results.append(result)
            if partial:
                partial.add(result)
            if not args.quiet:
                for row in rows(result, labels):
                    print(format_row(row, labels), flush=True)
            if result.error:
                log.warning("%s: %s", result.path, result.error)
    except BaseException:
        if partial:
            partial.close()
            log.warning("stopped: the %d files finished are in %s", partial.files, partial.path)
        raise
    summarise(results, predictor, time.perf_counter() - start)
    if args.output:
        card = predictor.card
        info = {"classifier": card.classifier, "features": card.identity,
                "trained_on": card.trained_on.model_dump(), "temperature": predictor.temperature,
                "novelty": card.novelty.model_dump()}
        log.info("wrote %s", write_output(args.output, results, labels, info))
        partial.done()
    return 0 if all(r.ok for r in results) else 1


def summarise(results: list, predictor, elapsed: float) -> None:
    """Log what the batch came to: files and audio predicted, failures, and ``unknown`` files and segments."""
    from ser.inference.output import rejection_rule

    ok = [r for r in results if r.ok]
    segments = [s for r in ok if r.segmented for s in r.segments]
    log.info("predicted %d of %d files (%.1f s of audio) in %.2f s; %d failed; unknown: %d of %d files, %d of %d "
             "segments of the %d long files (unknown when %s)", len(ok), len(results), sum(r.duration for r in ok),
             elapsed, len(results) - len(ok), sum(r.unknown for r in ok), len(ok), sum(s.unknown for s in segments),
             len(segments), sum(r.segmented for r in ok),
             rejection_rule(predictor.speech_threshold, predictor.card.novelty.method, predictor.threshold))


if __name__ == "__main__":
    sys.exit(main())
