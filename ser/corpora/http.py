"""HTTP with retries: exponential backoff honouring Retry-After, one rule for what is worth another
attempt (connection errors, timeouts, 429 and 5xx), a JSON GET, and a reachability check that cannot hang.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ser.errors import DownloadError

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0           # seconds, cap of one wait between attempts
USER_AGENT = "ser-downloader/0.1 (python-requests)"
# Network errors worth another attempt; other RequestExceptions (bad URL, bad scheme) are final.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)

T = TypeVar("T")


class Transient(Exception):
    """Worth another attempt; ``delay`` is the server's Retry-After, if it sent one."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class Final(Exception):
    """Another attempt would fail the same way (e.g. 404)."""


def _wait(attempt: int, backoff: float, hint: float | None) -> float:
    """Seconds before the next attempt: ``backoff * 2**attempt`` (or Retry-After), capped."""
    delay = backoff * 2 ** attempt
    if hint is not None:
        delay = max(delay, hint)
    return min(delay, MAX_BACKOFF)


def retrying(action: Callable[[], T], retries: int, backoff: float, what: str,
              stop: threading.Event | None = None) -> T:
    """Run ``action`` up to ``retries + 1`` times; raise DownloadError with the last reason."""
    stop = stop or threading.Event()
    for attempt in range(retries + 1):
        try:
            return action()
        except Final as exc:
            raise DownloadError(str(exc)) from exc
        except (Transient, *TRANSIENT_ERRORS) as exc:
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


def check_status(response: requests.Response) -> None:
    """Raise Transient for 429/5xx, Final for any other error status."""
    code = response.status_code
    if code < 400:
        return
    message = f"HTTP {code} {response.reason or ''}".rstrip()
    if code == 429 or code >= 500:
        raise Transient(message, _retry_after(response))
    # an API's JSON error says why (e.g. GitHub's rate limit); an HTML error page would only be noise
    body = response.text[:200].strip() if "json" in response.headers.get("Content-Type", "") else ""
    raise Final(f"{message}: {body}" if body else message)


def new_session(workers: int) -> requests.Session:
    """A Session whose connection pool has room for every worker thread."""
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(workers, 1))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    # identity: byte offsets of Range requests must mean bytes of the file, not of a gzip stream
    http.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return http


def get_json(url: str, *, retries: int = 4, backoff: float = 1.0, timeout: float = 30) -> Any:
    """GET ``url`` and decode its JSON body, with the same retry rules as ``download_files``."""
    def attempt() -> Any:
        with new_session(1) as http:
            response = http.get(url, timeout=timeout)
            check_status(response)
            try:
                return response.json()
            except ValueError as exc:
                raise Transient(f"not JSON ({response.headers.get('Content-Type', '?')})") from exc

    try:
        return retrying(attempt, retries, backoff, url)
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
