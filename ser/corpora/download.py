"""A small parallel HTTP downloader: retries with backoff, resumable ``.part`` files, verified payloads.

A file only ever appears at its destination after its verifier accepted it, so an interrupted or
failed run leaves ``<dest>.part`` files (resumed with an HTTP Range request next time), never a
half-written file under the real name.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from ser.corpora.http import Transient, check_status, new_session, retrying
from ser.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK = 1 << 16              # bytes per write
SHOWN_FAILURES = 5           # failed URLs named in the final DownloadError


@dataclass(frozen=True)
class DownloadJob:
    """One file to fetch: ``verify(path)`` raises ValueError when the payload is not usable."""

    url: str
    dest: Path
    verify: Callable[[Path], None] | None = None


# --------------------------------------------------------------------------- one file


def _part(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


def _range_start(response: requests.Response) -> int | None:
    """First byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    m = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(m[1]) if m else None


def _range_total(response: requests.Response) -> int | None:
    """Full size from a 416 answer (``Content-Range: bytes */TOTAL``)."""
    m = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
    return int(m[1]) if m else None


def _fetch(session: requests.Session, url: str, part: Path, timeout: float) -> None:
    """Write ``url`` to ``part``, continuing an existing ``part`` with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and offset:
            total = _range_total(response)
            if total == offset:     # the .part already holds the whole file
                return
            part.unlink(missing_ok=True)
            raise Transient(f"range from byte {offset} not satisfiable (size {total}), restarting")
        check_status(response)
        append = bool(offset) and response.status_code == 206
        if append and _range_start(response) != offset:
            part.unlink(missing_ok=True)
            raise Transient(f"asked for bytes from {offset}, got {response.headers.get('Content-Range')}")
        if offset:
            log.debug("%s: %s at byte %d", url, "resuming" if append else "server ignored Range, restarting",
                      offset)
        with part.open("ab" if append else "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)


def _accept(job: DownloadJob, part: Path) -> None:
    """Verify the finished ``part`` and move it into place; a bad payload is deleted and retried."""
    if job.verify is not None:
        try:
            job.verify(part)
        except (ValueError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise Transient(f"bad payload: {exc}") from exc
    os.replace(part, job.dest)


def _present(job: DownloadJob) -> bool:
    """True when ``dest`` exists and passes ``verify``; an invalid file is removed."""
    if not job.dest.is_file():
        return False
    if job.verify is None:
        return True
    try:
        job.verify(job.dest)
        return True
    except (ValueError, OSError) as exc:
        log.warning("%s exists but is not valid (%s): downloading it again", job.dest, exc)
        job.dest.unlink(missing_ok=True)
        return False


def _run_job(session: requests.Session, job: DownloadJob, retries: int, backoff: float, timeout: float,
             stop: threading.Event) -> bool:
    """Fetch one file unless present; return True when it was downloaded, raise DownloadError on failure."""
    if _present(job):
        return False
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part(job.dest)

    def attempt() -> None:
        _fetch(session, job.url, part, timeout)
        _accept(job, part)

    retrying(attempt, retries, backoff, job.url, stop)
    return True


# --------------------------------------------------------------------------- public API


def download_files(jobs: list[DownloadJob], workers: int = 8, retries: int = 4, backoff: float = 1.0,
                   timeout: float = 30, progress: bool = True) -> None:
    """Download ``jobs`` in parallel; files already present (and passing ``verify``) are skipped.

    Each file gets up to ``retries + 1`` attempts on connection errors, timeouts, 5xx, 429 and
    rejected payloads, waiting ``backoff * 2**attempt`` seconds (capped) in between; other 4xx fail
    at once. Raises one DownloadError listing the failed files once every job has finished.
    """
    dests = [job.dest for job in jobs]
    if len(set(dests)) != len(dests):
        raise ValueError("download_files: two jobs write the same destination")
    if not jobs:
        return
    stop = threading.Event()
    failures: list[tuple[str, str]] = []
    fetched = 0
    started = time.monotonic()
    with new_session(workers) as http, tqdm(total=len(jobs), desc="downloading", unit="file",
                                            disable=not progress, mininterval=0.5) as bar:
        pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="download")
        try:
            futures = {pool.submit(_run_job, http, job, retries, backoff, timeout, stop): job for job in jobs}
            for future in as_completed(futures):
                try:
                    fetched += future.result()
                except (DownloadError, OSError) as exc:  # OSError: writing locally, e.g. disk full
                    job = futures[future]
                    log.warning("failed: %s: %s", job.url, exc)
                    failures.append((job.url, str(exc)))
                bar.update()
                if failures:
                    bar.set_postfix(failed=len(failures), refresh=False)
        finally:
            stop.set()  # no-op when every job is done; on Ctrl-C, running jobs stop retrying
            pool.shutdown(wait=True, cancel_futures=True)
    log.info("downloaded %d file(s), %d already present, %d failed (%.1f s)", fetched,
             len(jobs) - fetched - len(failures), len(failures), time.monotonic() - started)
    if failures:
        raise DownloadError(_failure_message(failures, len(jobs)))


def _failure_message(failures: list[tuple[str, str]], total: int) -> str:
    shown = "; ".join(f"{url} ({reason})" for url, reason in sorted(failures)[:SHOWN_FAILURES])
    more = f"; and {len(failures) - SHOWN_FAILURES} more" if len(failures) > SHOWN_FAILURES else ""
    return f"{len(failures)} of {total} file(s) failed to download: {shown}{more}"
