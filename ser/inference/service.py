"""An HTTP service over a loaded :class:`~ser.inference.predict.Predictor` (FastAPI; ``python -m stages.serve``).

``POST /predict`` takes an audio file (multipart field ``file``) or raw PCM (body, ``Content-Type:
application/octet-stream``, 16-bit little-endian mono, ``?rate=`` its sample rate) and answers with the JSON
record predict writes for one file (``ser.inference.output.as_json``): label or ``unknown``, probabilities,
confidence, margin, entropy, novelty, speech presence, segments of long audio. Input predict cannot use gets
a 4xx with predict's reason (422 not decodable, empty, too short, silent; 413 over the size or duration limit;
411 a multipart upload without Content-Length; 415 another content type). ``GET /health`` (503 if the predict
worker stopped) and ``GET /model`` (the model card).

Nothing runs unbounded: at most ``max_pending`` requests are in the service at once (more get 503 with
Retry-After), no upload is read past ``max_bytes``, no request waits past ``wait_seconds`` (504), and one worker
thread predicts what is waiting together (up to ``max_batch`` files per ``Predictor.predict`` call, which batches
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

import soundfile as sf
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ser.inference.files import header_duration
from ser.inference.output import as_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may bring, how many may be in the service at once, and how long one may wait."""

    max_bytes: int = 50 * 2**20
    max_seconds: float = 600.0
    max_pending: int = 64  # requests admitted at once (being received or waiting): more get 503
    max_batch: int = 16
    wait_seconds: float = 600.0  # for its prediction: longer gets 504


class Batcher:
    """Files to predict, and one worker thread that predicts what is waiting together (up to ``max_batch``)."""

    def __init__(self, predictor, max_batch: int):
        self.predictor, self.max_batch = predictor, max_batch
        self.jobs: queue.Queue[tuple[str, Future]] = queue.Queue()
        self.served = self.batches = 0
        self.thread = threading.Thread(target=self._work, name="predict", daemon=True)
        self.thread.start()

    def submit(self, path: str) -> Future:
        future: Future = Future()
        self.jobs.put((path, future))
        return future

    def _work(self) -> None:
        while True:
            batch = self._take()
            try:
                results = {r.path: r for r in self.predictor.predict([path for path, _ in batch], progress="")}
                failure = None
            except Exception as err:  # noqa: BLE001 - a broken model fails these requests (500), not the service
                log.exception("predict failed on a batch of %d files", len(batch))
                results, failure = {}, err
            self.served, self.batches = self.served + len(batch), self.batches + 1
            for path, future in batch:
                if path in results:
                    future.set_result(results[path])
                else:
                    future.set_exception(failure or RuntimeError(f"predict returned no result for {path}"))

    def _take(self) -> list[tuple[str, Future]]:
        """The next batch: the first file waiting (blocking), then what else waits; cancelled requests left out."""
        batch: list[tuple[str, Future]] = []
        while not batch:
            job = self.jobs.get()
            while True:
                if job[1].set_running_or_notify_cancel():
                    batch.append(job)
                if len(batch) >= self.max_batch:
                    break
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
        return batch


def pcm_to_wav(raw: Path, rate: int) -> Path:
    """Raw 16-bit little-endian mono PCM (file ``raw``) as a WAV file beside it, block by block."""
    if rate < 1000 or rate > 384_000:
        raise ValueError(f"rate={rate}: give the PCM's sample rate in Hz (e.g. ?rate=16000)")
    if raw.stat().st_size % 2:
        raise ValueError("raw PCM must be 16-bit samples: the body has an odd number of bytes")
    path = raw.with_suffix(".wav")
    with sf.SoundFile(raw, format="RAW", subtype="PCM_16", endian="LITTLE", samplerate=rate, channels=1) as src, \
            sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:
        for block in src.blocks(2**18, dtype="int16"):
            out.write(block)
    return path


def too_long(path: Path, max_seconds: float) -> str:
    """Predict's reason when the file's header says it is longer than ``max_seconds`` ('' when it is not, or when
    the header cannot tell: predict then decides)."""
    seconds = header_duration(path)
    return f"too long: {seconds:.1f} s > the service's limit of {max_seconds:g} s" \
        if seconds is not None and seconds > max_seconds else ""


def create_app(predictor, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI application serving ``predictor``."""
    if predictor.group_norm:
        raise ValueError(f"this model was trained with features.normalize: {predictor.group_norm} (transductive): it "
                         "needs a batch of one speaker or recording set-up, which single requests are not; serve a "
                         "model trained without it")
    app = FastAPI(title="ser", description="speech emotion recognition")
    batcher = Batcher(predictor, limits.max_batch)
    card = predictor.card.model_dump(mode="json")
    admitted = 0  # requests in the service (the event loop's thread alone changes it)

    @app.get("/health")
    def health() -> JSONResponse:
        alive = batcher.thread.is_alive()
        return JSONResponse({"status": "ok" if alive else "the predict worker stopped", "admitted": admitted,
                             "waiting": batcher.jobs.qsize(), "served": batcher.served, "batches": batcher.batches},
                            status_code=200 if alive else 503)

    @app.get("/model")
    def model() -> dict:
        return card

    @app.post("/predict")
    async def predict(request: Request, rate: int | None = None):
        nonlocal admitted
        if admitted >= limits.max_pending:
            raise HTTPException(503, f"{admitted} requests are in the service; try again shortly",
                                headers={"Retry-After": "1"})
        admitted += 1
        try:
            with tempfile.TemporaryDirectory(prefix="ser-serve-") as tmp:
                path, name = await _received(request, rate, Path(tmp), limits.max_bytes)
                if reason := await run_in_threadpool(too_long, path, limits.max_seconds):
                    raise HTTPException(413, reason)
                future = batcher.submit(str(path))
                try:
                    result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), limits.wait_seconds)
                except asyncio.TimeoutError:  # noqa: UP041 - not the builtin on Python 3.10
                    future.cancel()  # left out of its batch if it is still waiting
                    raise HTTPException(504, f"no prediction within {limits.wait_seconds:g} s") from None
        finally:
            admitted -= 1
        if result.error:
            raise HTTPException(422, f"{name}: {result.error}")
        return JSONResponse({**as_json(result, predictor.labels), "path": name})

    return app


async def _received(request: Request, rate: int | None, folder: Path, max_bytes: int) -> tuple[Path, str]:
    """The request's audio as a file in ``folder`` and the name to report: a multipart ``file`` or raw PCM, never
    more than ``max_bytes`` of it read."""
    kind = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > max_bytes:
        raise HTTPException(413, f"the upload is {declared} bytes; the limit is {max_bytes}")
    if kind.startswith("multipart/form-data"):
        if declared is None:  # the form parser would spool a chunked upload whole before any check
            raise HTTPException(411, "a multipart upload needs a Content-Length")
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise HTTPException(422, "send the audio as the multipart field 'file'")
        name = Path(upload.filename or "upload").name
        path = folder / f"upload{Path(name).suffix[:10]}"
        with open(path, "wb") as out:
            while chunk := await upload.read(2**20):
                await run_in_threadpool(out.write, chunk)
        return path, name
    if kind.startswith("application/octet-stream"):
        if rate is None:
            raise HTTPException(422, "raw PCM needs its sample rate: ?rate=16000")
        raw, size = folder / "audio.raw", 0
        with open(raw, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"the upload is over the limit of {max_bytes} bytes")
                await run_in_threadpool(out.write, chunk)
        try:
            return await run_in_threadpool(pcm_to_wav, raw, rate), "pcm"
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
    raise HTTPException(415, f"Content-Type {kind or 'none'}: send multipart/form-data with a 'file' field, or raw "
                             "16-bit PCM as application/octet-stream with ?rate=")
