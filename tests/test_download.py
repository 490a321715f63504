"""The parallel downloader against a local HTTP server: retries, resume, verification, parallelism."""

import struct
import threading
import time
from pathlib import Path

import pytest
from http_server import HTML, LFS_POINTER, Server, unused_port, wav_bytes

from ser.corpora import http
from ser.corpora.download import DownloadJob, download_files
from ser.corpora.http import check_reachable, get_json
from ser.corpora.verify import verify_csv, verify_wav
from ser.errors import DownloadError


def fetch(server: Server, dest: Path, path: str = "/a.wav", **kwargs) -> None:
    """Download one route with fast test settings (no backoff, no progress bar)."""
    options = {"retries": 3, "backoff": 0, "timeout": 5, "progress": False, **kwargs}
    download_files([DownloadJob(server.url(path), dest, verify_wav)], **options)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Requests to 127.0.0.1 must not go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with Server() as s:
        yield s


# --------------------------------------------------------------------------- downloads


def test_downloads_files_and_a_rerun_is_free(server, tmp_path):
    bodies = {f"/{i}.wav": wav_bytes(seed=i) for i in range(3)}
    jobs = [DownloadJob(server.add(p, b), tmp_path / "out" / p[1:], verify_wav) for p, b in bodies.items()]
    download_files(jobs, workers=2, backoff=0, progress=True)
    for job, body in zip(jobs, bodies.values()):
        assert job.dest.read_bytes() == body
    assert not list(tmp_path.rglob("*.part"))
    seen = len(server.seen)
    download_files(jobs, workers=2, backoff=0, progress=False)
    assert len(server.seen) == seen == 3


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retries_transient_errors_then_succeeds(server, tmp_path, status):
    body = wav_bytes()
    server.add("/a.wav", body, fail=2, fail_status=status)
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    assert [s.status for s in server.seen] == [status, status, 200]


def test_gives_up_after_the_retries(server, tmp_path):
    server.add("/a.wav", wav_bytes(), fail=100)
    with pytest.raises(DownloadError, match=r"1 of 1 file.*/a\.wav.*HTTP 500.*4 attempts"):
        fetch(server, tmp_path / "a.wav", retries=3)
    assert len(server.seen) == 4
    assert not list(tmp_path.iterdir())


def test_backoff_waits_grow_exponentially(server, tmp_path, monkeypatch):
    """The waits between attempts follow the injected schedule (backoff * 2**attempt), and are slept."""
    server.add("/a.wav", wav_bytes(), fail=2)
    waits = []
    real_wait = http._wait
    monkeypatch.setattr(http, "_wait", lambda *args: waits.append(real_wait(*args)) or waits[-1])
    start = time.monotonic()
    fetch(server, tmp_path / "a.wav", backoff=0.05)
    assert waits == [0.05, 0.1]
    assert time.monotonic() - start >= 0.15  # a lower bound: a busy machine only makes it longer
    assert [s.status for s in server.seen] == [500, 500, 200]


def test_retry_after_overrides_a_shorter_backoff():
    assert http._wait(0, 0.05, 2.0) == 2.0
    assert http._wait(3, 1.0, 2.0) == 8.0
    assert http._wait(20, 1.0, None) == http.MAX_BACKOFF


def test_client_errors_fail_at_once_and_others_still_download(server, tmp_path):
    good = wav_bytes()
    jobs = [DownloadJob(server.add("/good.wav", good), tmp_path / "good.wav", verify_wav),
            DownloadJob(server.url("/missing.wav"), tmp_path / "missing.wav", verify_wav)]
    with pytest.raises(DownloadError) as err:
        download_files(jobs, retries=3, backoff=0, progress=False)
    assert "1 of 2 file(s) failed" in str(err.value)
    assert "/missing.wav (HTTP 404" in str(err.value)
    assert len(server.requests_for("/missing.wav")) == 1
    assert (tmp_path / "good.wav").read_bytes() == good
    assert not (tmp_path / "missing.wav").exists()


def test_many_failures_are_summarised(server, tmp_path):
    jobs = [DownloadJob(server.url(f"/missing{i}.wav"), tmp_path / f"{i}.wav") for i in range(8)]
    with pytest.raises(DownloadError, match=r"8 of 8 file\(s\) failed.*and 3 more"):
        download_files(jobs, backoff=0, progress=False)


@pytest.mark.parametrize("payload, reason", [
    (wav_bytes()[:3000], "truncated"),
    (HTML, "HTML"),
    (LFS_POINTER, "Git LFS pointer"),
])
def test_bad_payloads_are_retried_then_rejected(server, tmp_path, payload, reason):
    server.add("/a.wav", payload)
    with pytest.raises(DownloadError, match=reason):
        fetch(server, tmp_path / "a.wav", retries=2)
    assert len(server.seen) == 3
    assert not list(tmp_path.iterdir())  # neither the file nor a .part


def test_a_truncated_payload_can_be_transient(server, tmp_path):
    body = wav_bytes()
    server.add("/a.wav", body, truncate=1)  # first answer: half the file, honest Content-Length
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    assert len(server.seen) == 2
    assert "Range" not in server.seen[1].headers  # the bad .part was deleted, not resumed


def test_resumes_a_part_file_with_a_range_request(server, tmp_path):
    body = wav_bytes(seconds=1.0)
    server.add("/a.wav", body)
    half = len(body) // 2
    (tmp_path / "a.wav.part").write_bytes(body[:half])
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    assert not (tmp_path / "a.wav.part").exists()
    assert [(s.headers.get("Range"), s.status) for s in server.seen] == [(f"bytes={half}-", 206)]


def test_a_dropped_connection_is_resumed(server, tmp_path):
    body = wav_bytes(seconds=8.0)  # 256 kB: the chunks received before the cut are kept in the .part
    server.add("/a.wav", body, cut=1)
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    first, second = server.seen
    assert "Range" not in first.headers
    assert second.status == 206 and 0 < int(second.headers["Range"][6:-1]) <= len(body) // 2


def test_restarts_when_the_server_ignores_range(server, tmp_path):
    body = wav_bytes()
    server.add("/a.wav", body, ranges=False)
    (tmp_path / "a.wav.part").write_bytes(body[:100])
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    assert server.seen[0].status == 200


@pytest.mark.parametrize("extra, statuses", [(b"", [416]), (b"garbage", [416, 200])],
                         ids=["complete part is kept", "oversized part restarts"])
def test_416_keeps_a_complete_part_and_restarts_an_oversized_one(server, tmp_path, extra, statuses):
    body = wav_bytes()
    server.add("/a.wav", body)
    (tmp_path / "a.wav.part").write_bytes(body + extra)
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body
    assert [s.status for s in server.seen] == statuses


def test_an_invalid_existing_file_is_downloaded_again(server, tmp_path):
    body = wav_bytes()
    server.add("/a.wav", body)
    (tmp_path / "a.wav").write_bytes(LFS_POINTER)
    fetch(server, tmp_path / "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == body


def test_an_existing_file_without_verifier_is_kept(server, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"mine")
    download_files([DownloadJob(server.add("/a.bin", b"theirs"), tmp_path / "a.bin")], progress=False)
    assert (tmp_path / "a.bin").read_bytes() == b"mine"
    assert not server.seen


def test_downloads_run_in_parallel(server, tmp_path):
    jobs = [DownloadJob(server.add(f"/{i}.wav", wav_bytes(seed=i), delay=0.2), tmp_path / f"{i}.wav", verify_wav)
            for i in range(8)]
    download_files(jobs, workers=4, backoff=0, progress=False)
    assert 1 < server.max_active <= 4  # each answer takes 0.2 s, so workers overlap; never more than asked
    assert all(job.dest.is_file() for job in jobs)


def test_duplicate_destinations_are_refused(tmp_path):
    job = DownloadJob("http://127.0.0.1:1/a", tmp_path / "a")
    with pytest.raises(ValueError, match="same destination"):
        download_files([job, job], progress=False)


def test_get_json_retries_and_reports_api_errors(server):
    server.add("/list", b'{"tree": []}', content_type="application/json", fail=1)
    assert get_json(server.url("/list"), backoff=0) == {"tree": []}
    server.add("/limit", b'{"message": "API rate limit exceeded"}', status=403, content_type="application/json")
    with pytest.raises(DownloadError, match=r"/limit: HTTP 403.*rate limit exceeded"):
        get_json(server.url("/limit"), backoff=0)
    assert len(server.requests_for("/limit")) == 1


# --------------------------------------------------------------------------- reachability


def test_check_reachable(server):
    check_reachable(server.url("/anything"))
    url = f"http://127.0.0.1:{unused_port()}/x"
    with pytest.raises(DownloadError, match=f"cannot reach {url}: .*refused"):
        check_reachable(url, timeout=2)


def test_check_reachable_gives_up_on_a_host_that_never_answers(monkeypatch):
    """A connection (or DNS lookup) that hangs is abandoned after ``timeout``, with that reason."""
    never = threading.Event()

    def hang(*args, **kwargs):
        never.wait()
        raise OSError("released by the test")

    monkeypatch.setattr(http.socket, "create_connection", hang)
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match=r"cannot reach http://example\.invalid/x: no answer within 0\.2 s"):
            check_reachable("http://example.invalid/x", timeout=0.2)
    finally:
        never.set()
    assert time.monotonic() - start < 10  # a hang guard (50 x the timeout), not a speed claim


# --------------------------------------------------------------------------- verifiers


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def patch_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4:]


def data_offset(data: bytes) -> int:
    return data.index(b"data")


def test_verify_wav_accepts_a_wav(tmp_path):
    verify_wav(write(tmp_path / "a.wav", wav_bytes()))
    verify_wav(write(tmp_path / "b.part", wav_bytes(seconds=0.0)))  # no samples is still a whole file


@pytest.mark.parametrize("make, reason", [
    (lambda w: b"", "empty"),
    (lambda w: LFS_POINTER, "Git LFS pointer"),
    (lambda w: HTML, "HTML"),
    (lambda w: b" \n<HTML><head></head></HTML>", "HTML"),
    (lambda w: b"ID3\x03\x00" + w[5:], "not a RIFF/WAVE"),
    (lambda w: w[:8] + b"AVI " + w[12:], "not a RIFF/WAVE"),
    (lambda w: w[:len(w) - 10], "RIFF header says"),
    (lambda w: patch_u32(w, data_offset(w) + 4, len(w)), "data chunk says"),
    (lambda w: w[:36], "no data chunk"),
])
def test_verify_wav_rejects(tmp_path, make, reason):
    data = make(wav_bytes())
    if reason == "no data chunk":
        data = patch_u32(data, 4, len(data) - 8)  # a header cut right after fmt, its RIFF size fixed up
    with pytest.raises(ValueError, match=reason):
        verify_wav(write(tmp_path / "x.wav", data))


def test_verify_wav_follows_the_chunk_list(tmp_path):
    w = wav_bytes()
    fmt_end = data_offset(w)
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk, padded
    data = w[:fmt_end] + extra + w[fmt_end:]
    verify_wav(write(tmp_path / "a.wav", patch_u32(data, 4, len(data) - 8)))


def test_verify_csv(tmp_path):
    verify_csv(write(tmp_path / "ok.csv", "\ufeffActorID,Age\n1001,51\n".encode()))
    for data, reason in [(b"", "empty"), (b" \n", "empty"), (HTML, "HTML"), (LFS_POINTER, "LFS"),
                         (b"a,b\n\xff\xfe\n", "not UTF-8"), (b"just text\nx,y\n", "no comma")]:
        with pytest.raises(ValueError, match=reason):
            verify_csv(write(tmp_path / "x.csv", data))
