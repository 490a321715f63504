"""export: a trained models folder as a portable ONNX bundle (``ser.export.bundle``), run by onnxruntime alone.

    python -m stages.export [--models models] [--out models.onnx] [--int8] [--encoder PATH]

    python -m stages.predict clip.wav --models models.onnx [--precision int8]   # or stages.serve --models ...
    python -c "from runtime import Bundle"   # inside the bundle folder: numpy + onnxruntime only

The bundle is checked before it is written: generated clips through the model and the bundle, probabilities
within 1e-4. Exit code 0 written, 2 usage or model error (nothing written).
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("stages.export")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m stages.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models", help="trained model folder (default: models)")
    ap.add_argument("--out", default="models.onnx", help="bundle folder to write (default: models.onnx)")
    ap.add_argument("--int8", action="store_true",
                    help="also write encoder.int8.onnx: dynamic int8 quantisation of the encoder's matrix products")
    ap.add_argument("--encoder", metavar="PATH", help="the training encoder's folder, when it has moved")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from ser.errors import SerError
    from ser.export.bundle import export

    try:
        export(args.models, args.out, int8=args.int8, encoder=args.encoder)
    except (SerError, ValueError) as err:
        log.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
