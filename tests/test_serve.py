"""stages.serve: a models folder behind HTTP, tested with real requests on 127.0.0.1 against a server the test
starts (every wait bounded), and the bounded queue of ser.inference.service."""

import io
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import soundfile as sf
from http_server import unused_port
from trained_fixtures import train_models

from ser.config import Params
from ser.corpora import synthetic
from ser.inference.files import FileResult
from ser.inference.output import as_json
from ser.inference.predict import Predictor
from ser.inference.service import Batcher, Limits, QueueFull

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An MFCC + SVM model of six synthetic speakers, served by ``python -m stages.serve`` on a free port."""
    tmp = tmp_path_factory.mktemp("serve")
    synthetic.generate(tmp / "corpus", speakers=8, clips=4, classes=["angry", "happy", "neutral", "sad"],
                       duration=1.2, seed=0)
    clips = synthetic.scan(tmp / "corpus", Params())
    params = Params.model_validate({"dataset": "synthetic", "features": {"extractor": "mfcc"},
                                    "augment": {"n_augmentations": 0}})
    held = clips["speaker"].isin(["spk06", "spk07"]).to_numpy()
    train_models(tmp, clips[~held].reset_index(drop=True), params)
    port = unused_port()
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - the server's output, read on failure (a pipe could fill up)
    server = subprocess.Popen([sys.executable, "-m", "stages.serve", "--models", str(tmp / "models"), "--port",
                               str(port), "--max-mb", "1", "--max-seconds", "20"], cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the server did not come up: {(tmp / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield SimpleNamespace(url=url, models=tmp / "models", files=sorted(clips.loc[held, "path"]), tmp=tmp)
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


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


def test_the_queue_is_bounded():
    """One batch in the worker, one file waiting (max_pending 1): the next is refused, not queued."""
    release = threading.Event()

    class Slow:
        def predict(self, paths, progress=""):
            release.wait(30)
            return [FileResult(p) for p in paths]

    batcher = Batcher(Slow(), Limits(max_pending=1, max_batch=1))
    first = batcher.submit("a")
    deadline = time.monotonic() + 10
    while batcher.jobs.qsize() and time.monotonic() < deadline:  # the worker takes "a" and blocks
        time.sleep(0.01)
    second = batcher.submit("b")
    with pytest.raises(QueueFull, match="1 files are waiting"):
        batcher.submit("c")
    release.set()
    assert first.result(timeout=10).path == "a" and second.result(timeout=10).path == "b"


def test_a_model_that_needs_a_batch_is_refused_at_start(served):
    from ser.inference.service import create_app

    predictor = Predictor.load(served.models)
    predictor.group_norm = "corpus"
    with pytest.raises(ValueError, match="features.normalize: corpus"):
        create_app(predictor)
