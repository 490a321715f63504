"""A small parallel HTTP downloader: retries with backoff, resumable ``.part`` files, verified payloads.

A file only ever appears at its destination after its verifier accepted it, so an interrupted or
failed run leaves ``<dest>.part`` files (resumed with an HTTP Range request next time), never a
half-written file under the real name.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from .errors import DownloadError

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0           # seconds, cap of one wait between attempts
CHUNK = 1 << 16              # bytes per write
SHOWN_FAILURES = 5           # failed URLs named in the final DownloadError
USER_AGENT = "ser-downloader/0.1 (python-requests)"
# Network errors worth another attempt; other RequestExceptions (bad URL, bad scheme) are final.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)

T = TypeVar("T")


@dataclass(frozen=True)
class DownloadJob:
    """One file to fetch: ``verify(path)`` raises ValueError when the payload is not usable."""

    url: str
    dest: Path
    verify: Callable[[Path], None] | None = None


class _Transient(Exception):
    """Worth another attempt; ``delay`` is the server's Retry-After, if it sent one."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class _Final(Exception):
    """Another attempt would fail the same way (e.g. 404)."""


# --------------------------------------------------------------------------- retries


def _wait(attempt: int, backoff: float, hint: float | None) -> float:
    """Seconds before the next attempt: ``backoff * 2**attempt`` (or Retry-After), capped."""
    delay = backoff * 2 ** attempt
    if hint is not None:
        delay = max(delay, hint)
    return min(delay, MAX_BACKOFF)


def _retrying(action: Callable[[], T], retries: int, backoff: float, what: str,
              stop: threading.Event | None = None) -> T:
    """Run ``action`` up to ``retries + 1`` times; raise DownloadError with the last reason."""
    stop = stop or threading.Event()
    for attempt in range(retries + 1):
        try:
            return action()
        except _Final as exc:
            raise DownloadError(str(exc)) from exc
        except (_Transient, *TRANSIENT_ERRORS) as exc:
            reason = str(exc) or type(exc).__name__
            if attempt == retries:
                raise DownloadError(f"{reason} (gave up after {retries + 1} attempts)") from exc
            delay = _wait(attempt, backoff, getattr(exc, "delay", None))
            log.debug("%s: %s; attempt %d of %d again in %.1f s", what, reason, attempt + 2, retries + 1, delay)
            if stop.wait(delay):
                raise DownloadError("interrupted") from exc
        except requests.RequestException as exc:
            raise DownloadError(str(exc)) from exc
    raise AssertionError("unreachable")


def _retry_after(response: requests.Response) -> float | None:
    """The Retry-After header in seconds (number or HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _check_status(response: requests.Response) -> None:
    """Raise _Transient for 429/5xx, _Final for any other error status."""
    code = response.status_code
    if code < 400:
        return
    message = f"HTTP {code} {response.reason or ''}".rstrip()
    if code == 429 or code >= 500:
        raise _Transient(message, _retry_after(response))
    # an API's JSON error says why (e.g. GitHub's rate limit); an HTML error page would only be noise
    body = response.text[:200].strip() if "json" in response.headers.get("Content-Type", "") else ""
    raise _Final(f"{message}: {body}" if body else message)


def _session(workers: int) -> requests.Session:
    """A Session whose connection pool has room for every worker thread."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(workers, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # identity: byte offsets of Range requests must mean bytes of the file, not of a gzip stream
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return session


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
            raise _Transient(f"range from byte {offset} not satisfiable (size {total}), restarting")
        _check_status(response)
        append = bool(offset) and response.status_code == 206
        if append and _range_start(response) != offset:
            part.unlink(missing_ok=True)
            raise _Transient(f"asked for bytes from {offset}, got {response.headers.get('Content-Range')}")
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
            raise _Transient(f"bad payload: {exc}") from exc
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

    _retrying(attempt, retries, backoff, job.url, stop)
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
    with _session(workers) as session, tqdm(total=len(jobs), desc="downloading", unit="file",
                                            disable=not progress, mininterval=0.5) as bar:
        pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="download")
        try:
            futures = {pool.submit(_run_job, session, job, retries, backoff, timeout, stop): job for job in jobs}
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


def get_json(url: str, *, retries: int = 4, backoff: float = 1.0, timeout: float = 30) -> Any:
    """GET ``url`` and decode its JSON body, with the same retry rules as ``download_files``."""
    def attempt() -> Any:
        with _session(1) as session:
            response = session.get(url, timeout=timeout)
            _check_status(response)
            try:
                return response.json()
            except ValueError as exc:
                raise _Transient(f"not JSON ({response.headers.get('Content-Type', '?')})") from exc

    try:
        return _retrying(attempt, retries, backoff, url)
    except DownloadError as exc:
        raise DownloadError(f"{url}: {exc}") from exc


def _proxy_for(url: str) -> str | None:
    """The proxy requests would use for ``url`` (from the environment), if any."""
    proxies = requests.utils.get_environ_proxies(url)
    return proxies.get(urlsplit(url).scheme) or proxies.get("all")


def _connect(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection; DNS lookup included in ``timeout`` (it may otherwise hang)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="check-reachable")
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def check_reachable(url: str, timeout: float = 5) -> None:
    """Raise DownloadError naming ``url`` unless a TCP connection to its host (or proxy) opens in time."""
    proxy = _proxy_for(url)
    target = urlsplit(proxy if proxy else url)
    if not target.hostname:
        raise DownloadError(f"cannot reach {url}: no host in the URL")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        _connect(target.hostname, port, timeout)
    except OSError as exc:
        via = f" via proxy {target.hostname}:{port}" if proxy else ""
        raise DownloadError(f"cannot reach {url}{via}: {exc.strerror or exc} (offline?)") from exc


# --------------------------------------------------------------------------- verifiers

_LFS = b"version https://git-lfs"


def _sniff(head: bytes) -> None:
    """Reject the usual stand-ins for a real file: a Git LFS pointer or an HTML page."""
    if head.startswith(_LFS):
        raise ValueError("a Git LFS pointer, not the file itself")
    start = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if start.startswith((b"<!doctype", b"<html")):
        raise ValueError("an HTML page, not the file itself")


def verify_wav(path: Path) -> None:
    """Raise ValueError unless ``path`` is a complete RIFF/WAVE file (fmt and data chunks all there)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(512)
        if not head:
            raise ValueError("empty file")
        _sniff(head)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        riff_end = 8 + struct.unpack("<I", head[4:8])[0]
        if riff_end > size:
            raise ValueError(f"truncated: the RIFF header says {riff_end} bytes, the file holds {size}")
        _walk_chunks(f, size)


def _walk_chunks(f, end: int) -> None:
    """Follow the chunk list up to the data chunk; it must follow a fmt chunk and end by byte ``end``."""
    pos, seen_fmt = 12, False
    while pos + 8 <= end:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        body_end = pos + 8 + chunk_size
        if chunk_id == b"data":
            if not seen_fmt:
                raise ValueError("data chunk before any fmt chunk")
            if body_end > end:
                raise ValueError(f"truncated: the data chunk says {chunk_size} bytes, "
                                 f"the file holds {end - pos - 8}")
            return
        seen_fmt = seen_fmt or chunk_id == b"fmt "
        pos = body_end + (chunk_size & 1)   # chunks are word-aligned
    raise ValueError("truncated: no data chunk")


def verify_csv(path: Path) -> None:
    """Raise ValueError unless ``path`` is non-empty UTF-8 text with a comma in its first line."""
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ValueError("empty file")
    _sniff(raw[:512])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if "," not in text.splitlines()[0]:
        raise ValueError("no comma in the first line, not a CSV table")
