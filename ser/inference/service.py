"""An HTTP service over a loaded :class:`~ser.inference.predict.Predictor` (FastAPI; ``python -m stages.serve``).

``POST /predict`` takes an audio file (multipart field ``file``) or raw PCM (body, ``Content-Type:
application/octet-stream``, 16-bit little-endian mono, ``?rate=`` its sample rate) and answers with the JSON
record predict writes for one file (``ser.inference.output.as_json``): label or ``unknown``, probabilities,
confidence, margin, entropy, novelty, speech presence, segments of long audio. Input predict cannot use gets
a 4xx with predict's reason (413 too large or too long, 422 not decodable, empty, too short, silent; 503
when the queue is full). ``GET /health`` and ``GET /model`` (the model card).

Requests never run unbounded: they wait in a queue of at most ``max_pending`` files, and one worker thread
predicts what is waiting together (up to ``max_batch`` files per ``Predictor.predict`` call, which batches
their windows for the encoder), so concurrent requests share batches instead of competing for the cores.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from ser.inference.output import as_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may bring, and how much may wait."""

    max_bytes: int = 50 * 2**20
    max_seconds: float = 600.0
    max_pending: int = 64
    max_batch: int = 16


class QueueFull(Exception):
    """More than ``Limits.max_pending`` files are waiting."""


class Batcher:
    """A bounded queue of files and one worker thread that predicts what is waiting, together."""

    def __init__(self, predictor, limits: Limits):
        self.predictor, self.limits = predictor, limits
        self.jobs: queue.Queue[tuple[str, Future]] = queue.Queue(maxsize=limits.max_pending)
        self.served = self.batches = 0
        threading.Thread(target=self._work, name="predict", daemon=True).start()

    def submit(self, path: str) -> Future:
        future: Future = Future()
        try:
            self.jobs.put_nowait((path, future))
        except queue.Full:
            raise QueueFull(f"{self.limits.max_pending} files are waiting; try again shortly") from None
        return future

    def _work(self) -> None:
        while True:
            batch = [self.jobs.get()]
            while len(batch) < self.limits.max_batch:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                results = {r.path: r for r in self.predictor.predict([path for path, _ in batch], progress="")}
                for path, future in batch:
                    future.set_result(results[path])
            except Exception as err:  # noqa: BLE001 - a broken model fails these requests (500), not the service
                log.exception("predict failed on a batch of %d files", len(batch))
                for _, future in batch:
                    future.set_exception(err)
            self.served, self.batches = self.served + len(batch), self.batches + 1


def pcm_to_wav(body: bytes, rate: int, folder: Path) -> Path:
    """Raw 16-bit little-endian mono PCM as a WAV file in ``folder``."""
    if rate < 1000 or rate > 384_000:
        raise ValueError(f"rate={rate}: give the PCM's sample rate in Hz (e.g. ?rate=16000)")
    if len(body) % 2:
        raise ValueError("raw PCM must be 16-bit samples: the body has an odd number of bytes")
    path = folder / "audio.wav"
    sf.write(path, np.frombuffer(body, "<i2"), rate, subtype="PCM_16")
    return path


def too_long(path: Path, max_seconds: float) -> str:
    """Predict's reason when the file's header says it is longer than ``max_seconds`` ('' when it is not, or when
    the header cannot tell: predict then decides)."""
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - undecodable: predict gives the reason
        return ""
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    return f"too long: {seconds:.1f} s > the service's limit of {max_seconds:g} s" if seconds > max_seconds else ""


def create_app(predictor, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI application serving ``predictor``."""
    if predictor.group_norm:
        raise ValueError(f"this model was trained with features.normalize: {predictor.group_norm} (transductive): it "
                         "needs a batch of one speaker or recording set-up, which single requests are not; serve a "
                         "model trained without it")
    app = FastAPI(title="ser", description="speech emotion recognition")
    batcher = Batcher(predictor, limits)
    card = predictor.card.model_dump(mode="json")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "pending": batcher.jobs.qsize(), "served": batcher.served, "batches": batcher.batches}

    @app.get("/model")
    def model() -> dict:
        return card

    @app.post("/predict")
    async def predict(request: Request, rate: int | None = None):
        declared = int(request.headers.get("content-length") or 0)
        if declared > limits.max_bytes:
            raise HTTPException(413, f"the upload is {declared} bytes; the limit is {limits.max_bytes}")
        with tempfile.TemporaryDirectory(prefix="ser-serve-") as tmp:
            path, name = await _received(request, rate, Path(tmp), limits.max_bytes)
            if reason := too_long(path, limits.max_seconds):
                raise HTTPException(413, reason)
            try:
                result = await asyncio.wrap_future(batcher.submit(str(path)))
            except QueueFull as err:
                raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None
        if result.error:
            raise HTTPException(413 if result.error.startswith("too long") else 422, f"{name}: {result.error}")
        return JSONResponse({**as_json(result, predictor.labels), "path": name})

    return app


async def _received(request: Request, rate: int | None, folder: Path, max_bytes: int) -> tuple[Path, str]:
    """The request's audio as a file in ``folder`` and the name to report: a multipart ``file`` or raw PCM."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise HTTPException(422, "send the audio as the multipart field 'file'")
        name = Path(upload.filename or "upload").name
        path = folder / f"upload{Path(name).suffix[:10]}"
        size = 0
        with open(path, "wb") as out:
            while chunk := await upload.read(2**20):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"the upload is over the limit of {max_bytes} bytes")
                out.write(chunk)
        return path, name
    if kind.startswith("application/octet-stream"):
        if rate is None:
            raise HTTPException(422, "raw PCM needs its sample rate: ?rate=16000")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise HTTPException(413, f"the upload is over the limit of {max_bytes} bytes")
        try:
            return pcm_to_wav(bytes(body), rate, folder), "pcm"
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
    raise HTTPException(415, f"Content-Type {kind or 'none'}: send multipart/form-data with a 'file' field, or raw "
                             "16-bit PCM as application/octet-stream with ?rate=")
