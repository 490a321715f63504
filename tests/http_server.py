"""A scriptable local HTTP server (127.0.0.1, a free port) for the download tests.

Each path gets a ``Route``: the body, and how often to misbehave before serving it properly
(500s, truncated bodies, dropped connections). Every request is recorded, and the highest
number of requests in flight at once is kept, to show that downloads run in parallel.
Also the payloads the tests serve: a small WAV, a Git LFS pointer, an HTML error page.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    fail: int = 0            # answer 500 (or ``fail_status``) this many times first
    fail_status: int = 500
    truncate: int = 0        # then serve only the first half (honest Content-Length) this many times
    cut: int = 0             # then promise the whole body, send half and close, this many times
    delay: float = 0.0       # seconds before answering
    ranges: bool = True      # honour Range requests
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int


class Server:
    """``with Server() as server: server.add("/a.wav", data); server.url("/a.wav")``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.handle_error = _quiet_handle_error(self._httpd.handle_error)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes, **options) -> str:
        """Serve ``body`` at ``path`` (options: see Route); return its URL."""
        self.routes[path] = Route(body, **options)
        return self.url(path)

    def requests_for(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def _enter(self, seen: Seen) -> Seen:
        with self._lock:
            self.seen.append(seen)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        return seen

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1


def _quiet_handle_error(default):
    """Clients that hang up (a test's point, sometimes) are not errors worth a traceback."""
    def handle_error(request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)
    return handle_error


LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")
HTML = b"\n  <!DOCTYPE html>\n<html><body>Rate limit exceeded</body></html>"


def wav_bytes(seconds: float = 0.25, sr: int = 16000, seed: int = 0) -> bytes:
    """A small 16-bit PCM WAV, as bytes."""
    noise = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    buf = io.BytesIO()
    sf.write(buf, noise.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def unused_port() -> int:
    """A local port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is used

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            # recorded before answering: the client may look as soon as it has the answer
            self.record = server._enter(Seen(self.path, dict(self.headers), 0))
            try:
                self._answer(server.routes.get(self.path.split("?")[0]))
            finally:
                server._leave()

        def send_response(self, code: int, message: str | None = None) -> None:
            self.record.status = code
            super().send_response(code, message)

        def _answer(self, route: Route | None) -> int:
            if route is None:
                return self._send(404, b"<!DOCTYPE html><p>not found</p>", "text/html")
            time.sleep(route.delay)
            if route.fail:
                route.fail -= 1
                return self._send(route.fail_status, b"<html>busy</html>", "text/html", {"Retry-After": "0"})
            if route.status != 200:
                return self._send(route.status, route.body, route.content_type, route.headers)
            if route.truncate:
                route.truncate -= 1
                return self._send(200, route.body[: len(route.body) // 2], route.content_type)
            if route.cut:
                route.cut -= 1
                return self._cut(route)
            return self._ranged(route)

        def _ranged(self, route: Route) -> int:
            body, size = route.body, len(route.body)
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if not (m and route.ranges):
                return self._send(200, body, route.content_type, route.headers)
            start = int(m[1])
            if start >= size:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            return self._send(206, body[start:], route.content_type,
                              {**route.headers, "Content-Range": f"bytes {start}-{size - 1}/{size}"})

        def _cut(self, route: Route) -> int:
            self.send_response(200)
            self.send_header("Content-Length", str(len(route.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(route.body[: len(route.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return 200

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> int:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            return status

    return Handler


@contextmanager
def stages_serve(models: Path, log: Path, *options: str, start_seconds: float = 120) -> Iterator[str]:
    """``python -m stages.serve --models models`` on a free port of 127.0.0.1 (its output in ``log``: a pipe could
    fill up and stall it), its URL once ``/health`` answers; stopped on exit. Every wait is bounded."""
    import requests

    port = unused_port()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "stages.serve", "--models", str(models), "--port", str(port),
                                   *options], cwd=Path(__file__).resolve().parents[1], stdout=out,
                                  stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
