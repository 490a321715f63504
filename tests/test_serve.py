"""stages.serve: a models folder behind HTTP, tested with real requests on 127.0.0.1 against a server the test
starts (every wait bounded), and the bounded queue of ser.inference.service."""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import soundfile as sf
import uvicorn
from http_server import stages_serve, unused_port
from trained_fixtures import held_out_corpus, train_models

from ser.config import Params
from ser.inference.files import FileResult
from ser.inference.output import as_json
from ser.inference.predict import Predictor
from ser.inference.service import Limits, create_app

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An MFCC + SVM model of six synthetic speakers, served by ``python -m stages.serve`` on a free port."""
    tmp = tmp_path_factory.mktemp("serve")
    train, files = held_out_corpus(tmp, 8, ["spk06", "spk07"])
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"},
                                    "augment": {"n_augmentations": 0}})
    train_models(tmp, train, params)
    with stages_serve(tmp / "models", tmp / "server.log", "--max-mb", "1", "--max-seconds", "20") as url:
        yield SimpleNamespace(url=url, models=tmp / "models", files=files, tmp=tmp)


def post_file(url: str, path: Path, name: str | None = None) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(f"{url}/predict", files={"file": (name or Path(path).name, f)}, timeout=120)


def test_a_file_gets_the_record_predict_writes(served):
    expected = {r.path: as_json(r, Predictor.load(served.models).labels)
                for r in Predictor.load(served.models).predict(served.files[:3])}
    for path in served.files[:3]:
        response = post_file(served.url, path)
        assert response.status_code == 200, response.text
        got, want = response.json(), expected[path]
        assert got["path"] == Path(path).name and got["predicted"] == want["predicted"]
        np.testing.assert_allclose(list(got["probabilities"].values()), list(want["probabilities"].values()),
                                   atol=1e-4)
        assert {"confidence", "margin", "entropy", "novelty", "segments"} <= set(got)
    card = requests.get(f"{served.url}/model", timeout=10).json()
    assert card["labels"] == ["angry", "happy", "neutral", "sad"] and card["classifier"] == "svm"


def test_raw_pcm_with_its_rate_is_the_same_as_the_file(served):
    wave, sr = sf.read(served.files[0], dtype="int16")
    raw = requests.post(f"{served.url}/predict?rate={sr}", data=wave.tobytes(),
                        headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert raw.status_code == 200, raw.text
    assert raw.json()["probabilities"] == post_file(served.url, served.files[0]).json()["probabilities"]
    no_rate = requests.post(f"{served.url}/predict", data=wave.tobytes(),
                            headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert no_rate.status_code == 422 and "rate" in no_rate.json()["detail"]


def test_fifty_concurrent_requests_are_all_answered_and_batched(served):
    before = requests.get(f"{served.url}/health", timeout=10).json()
    paths = [served.files[i % len(served.files)] for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda p: post_file(served.url, p), paths))
    assert [r.status_code for r in responses] == [200] * 50
    alone = {p: post_file(served.url, p).json()["probabilities"] for p in set(paths)}
    assert all(r.json()["probabilities"] == alone[p] for r, p in zip(responses, paths))  # batching changes nothing
    after = requests.get(f"{served.url}/health", timeout=10).json()
    assert after["served"] - before["served"] == 50 + len(alone)
    assert after["batches"] - before["batches"] < 50 + len(alone), "concurrent requests were never batched"


def test_bad_input_gets_predicts_reason_as_a_4xx(served, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent, short, long = tmp_path / "silent.wav", tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(silent, np.zeros(SR), SR)
    sf.write(short, 0.1 * np.ones(800), SR)
    sf.write(long, np.zeros(25 * SR, np.int16), SR, subtype="PCM_16")  # 25 s > --max-seconds 20, 0.8 MB < 1 MB
    cases = {broken: (422, "not decodable"), empty: (422, "empty file"), silent: (422, "silent"),
             short: (422, "too short"), long: (413, "too long")}
    for path, (status, reason) in cases.items():
        response = post_file(served.url, path)
        assert response.status_code == status and reason in response.json()["detail"], (path.name, response.text)
    big = io.BytesIO(b"\x00" * (2 * 2**20))
    too_big = requests.post(f"{served.url}/predict", files={"file": ("big.wav", big)}, timeout=60)
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    wrong = requests.post(f"{served.url}/predict", data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert wrong.status_code == 415
    assert requests.get(f"{served.url}/health", timeout=10).json()["status"] == "ok"  # still serving


class Stub:
    """A predictor that answers every file with the same probabilities, fails on a file that begins with BAD, and
    waits for ``release`` first when told to."""

    group_norm, labels = None, ["happy", "sad"]
    card = SimpleNamespace(model_dump=lambda mode: {"labels": ["happy", "sad"]})

    def __init__(self, wait: bool = False):
        self.release = threading.Event()
        if not wait:
            self.release.set()

    def predict(self, paths, progress=""):
        self.release.wait(30)
        if any(Path(p).read_bytes().startswith(b"BAD") for p in paths):
            raise RuntimeError("the model broke")
        return [FileResult(p, 1.0, proba=np.array([0.75, 0.25]), novelty=0.0) for p in paths]


@contextmanager
def serving(predictor, **limits):
    """``create_app(predictor)`` behind uvicorn on a free port of 127.0.0.1, in a thread of this process."""
    port = unused_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor, Limits(**limits)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def upload(url: str, name: str, data: bytes = b"RIFF") -> requests.Response:
    return requests.post(f"{url}/predict", files={"file": (name, data)}, timeout=60)


def test_a_failing_batch_fails_its_requests_and_the_service_goes_on():
    with serving(Stub()) as url:
        assert upload(url, "bad.wav", b"BAD").status_code == 500
        good = upload(url, "good.wav")
        assert good.status_code == 200 and good.json()["predicted"] == "happy"
        assert requests.get(f"{url}/health", timeout=10).json()["status"] == "ok"


def test_requests_beyond_max_pending_get_503_and_none_waits_past_wait_seconds():
    stub = Stub(wait=True)
    with serving(stub, max_pending=2, wait_seconds=3) as url, ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(upload, url, f"{i}.wav") for i in range(2)]
        deadline = time.monotonic() + 10
        while requests.get(f"{url}/health", timeout=10).json()["admitted"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = upload(url, "third.wav")
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert [f.result(timeout=30).status_code for f in waiting] == [504, 504]
        stub.release.set()
        assert upload(url, "later.wav").status_code == 200


def test_no_upload_is_read_past_the_limit_chunked_or_not():
    def chunks(n: int):
        for _ in range(n):
            yield b"\x00" * 2**16

    with serving(Stub(), max_bytes=2**20) as url:
        raw = requests.post(f"{url}/predict?rate=16000", data=chunks(64), timeout=60,
                            headers={"Content-Type": "application/octet-stream"})  # chunked: no Content-Length
        assert raw.status_code == 413 and "over the limit" in raw.json()["detail"]
        form = requests.post(f"{url}/predict", data=chunks(64), timeout=60,
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert form.status_code == 411
        small = requests.post(f"{url}/predict?rate=16000", data=chunks(2), timeout=60,
                              headers={"Content-Type": "application/octet-stream"})
        assert small.status_code == 200, small.text


def test_a_model_that_needs_a_batch_is_refused_at_start(served):
    predictor = Predictor.load(served.models)
    predictor.group_norm = "corpus"
    with pytest.raises(ValueError, match="features.normalize: corpus"):
        create_app(predictor)
