"""serve: a trained models folder or an exported bundle behind HTTP (``ser.inference.service``).

    python -m stages.serve [--models models | models.onnx [--precision int8]] [--host 127.0.0.1] [--port 8000]
        [--max-mb 50] [--max-seconds 600] [--max-pending 64] [--max-batch 16] [--wait-seconds 600]

    curl -F file=@clip.wav http://127.0.0.1:8000/predict
    curl --data-binary @clip.pcm -H 'Content-Type: application/octet-stream' 'http://127.0.0.1:8000/predict?rate=16000'
    curl http://127.0.0.1:8000/health; curl http://127.0.0.1:8000/model

The model is loaded once, before the port opens (a broken folder fails at start, exit 2). Exit code 0 on a
normal shutdown (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("stages.serve")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m stages.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models", help="trained model folder or exported bundle (default: models)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ap.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    ap.add_argument("--max-mb", type=float, default=50.0, help="largest upload in MB (default: 50; larger: 413)")
    ap.add_argument("--max-seconds", type=float, default=600.0,
                    help="longest audio in seconds (default: 600; longer: 413)")
    ap.add_argument("--max-pending", type=int, default=64,
                    help="requests in the service at once, being received or waiting (default: 64; more: 503 with "
                         "Retry-After)")
    ap.add_argument("--wait-seconds", type=float, default=600.0,
                    help="longest a request waits for its prediction (default: 600; longer: 504)")
    ap.add_argument("--max-batch", type=int, default=16, help="files predicted together (default: 16)")
    ap.add_argument("--device", help="neural extractors: auto | cuda | mps | cpu (default: as in training)")
    ap.add_argument("--encoder", metavar="PATH", help="the training encoder's folder, when it has moved")
    ap.add_argument("--workers", type=int, default=2, help="audio reader threads (default: 2)")
    ap.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                    help="an exported bundle (stages.export): run its fp32 or int8 encoder (default: fp32)")
    args = ap.parse_args(argv)
    for name in ("max_mb", "max_seconds", "max_pending", "max_batch", "wait_seconds", "workers"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    import uvicorn

    from ser.errors import SerError
    from ser.inference.predict import Predictor
    from ser.inference.service import Limits, create_app

    limits = Limits(int(args.max_mb * 2**20), args.max_seconds, args.max_pending, args.max_batch, args.wait_seconds)
    try:
        predictor = Predictor.load(args.models, device=args.device, encoder=args.encoder, workers=args.workers,
                                   precision=args.precision)
        app = create_app(predictor, limits)
    except (SerError, ValueError) as err:
        log.error("%s", err)
        return 2
    log.info("serving %s on http://%s:%d (POST /predict, GET /health, GET /model); %s", args.models, args.host,
             args.port, limits)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
