"""prepare: the corpus protocol, label selection and the exclusion report (one broken clip never
stops a run)."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
from audio_fixtures import tone

from ser.config import Params, load_params
from ser.corpora import registry
from ser.corpora.audio import probe
from ser.corpora.manifest import build_manifest, scan_corpus, select_labels
from ser.errors import ConfigError, DatasetError


def folder_params(root, **data) -> Params:
    return Params.model_validate({"dataset": "folder", "data": {"dir": str(root), "workers": 2, **data}})


def test_exclusion_report_keeps_the_run_going(tmp_path):
    root = tmp_path / "corpus"
    tone(root / "happy" / "good.wav", 1.0)
    tone(root / "happy" / "stereo44k.wav", 1.0, sr=44100, channels=2)
    tone(root / "sad" / "short.wav", 0.05)
    tone(root / "sad" / "fine.flac", 0.8, freq=150, fmt="FLAC")
    (root / "sad" / "empty.wav").write_bytes(b"")
    (root / "angry").mkdir()
    (root / "angry" / "notes.wav").write_text("this is not audio\n")
    tone(root / "angry" / "silent.wav", 1.0, level=0.0)

    manifest, excluded, summary = build_manifest(folder_params(root))

    assert sorted(manifest["path"].map(lambda p: p.rsplit("/", 1)[1])) == ["fine.flac", "good.wav", "stereo44k.wav"]
    stereo = manifest.set_index(manifest["path"].str.rsplit("/", n=1).str[1]).loc["stereo44k.wav"]
    assert stereo["channels"] == 2 and stereo["sample_rate"] == 44100
    assert stereo["duration"] == pytest.approx(1.0, abs=1e-3)
    reasons = dict(zip(excluded["path"].str.rsplit("/", n=1).str[1], excluded["reason"]))
    assert reasons["empty.wav"] == "empty file"
    assert reasons["notes.wav"].startswith("not decodable audio")
    assert reasons["short.wav"].startswith("too short")
    assert reasons["silent.wav"].startswith("silent")
    assert summary["excluded"] == 4 and summary["clips"] == 3
    assert manifest["sha1"].str.len().eq(40).all()


def test_probe_reports_a_missing_file(tmp_path):
    assert probe(tmp_path / "gone.wav").reason.startswith("unreadable")


def test_a_file_too_long_is_excluded_from_its_header_without_decoding(tmp_path, monkeypatch):
    import soundfile as sf

    from ser.corpora import audio

    sf.write(tmp_path / "long.wav", np.zeros(16000 * 30, np.float32) + 0.1, 16000)
    decoded = []
    real = sf.SoundFile.blocks
    monkeypatch.setattr(sf.SoundFile, "blocks", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k))
    monkeypatch.setattr(sf, "read", lambda *a, **k: decoded.append(1) or pytest.fail("decoded a whole file"))
    found = audio.probe(tmp_path / "long.wav", max_duration=10.0)
    assert found.reason == "too long: 30.0 s > data.max_duration 10.0 s" and found.duration == 30.0
    assert not decoded
    assert audio.probe(tmp_path / "long.wav", max_duration=60.0).reason == "" and decoded  # blocks, then usable


def test_label_map_then_keep():
    clips = pd.DataFrame({"label": ["happy", "surprised", "sad", "fearful", "angry", "disgust", "neutral", "calm"]})
    four = {"surprised": "happy", "fearful": "sad", "disgust": "angry"}
    kept = select_labels(clips, ["happy", "sad", "angry", "neutral"], four)
    assert kept["label"].value_counts().to_dict() == {"happy": 2, "sad": 2, "angry": 2, "neutral": 1}


def test_unknown_kept_label_is_an_error():
    with pytest.raises(DatasetError, match=r"data\.labels: \['joy'\] not in this corpus"):
        select_labels(pd.DataFrame({"label": ["happy", "sad"]}), ["joy"], None)


def test_all_clips_excluded_is_an_error(tmp_path):
    (tmp_path / "c" / "happy").mkdir(parents=True)
    (tmp_path / "c" / "happy" / "x.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="no usable clips"):
        build_manifest(folder_params(tmp_path / "c"))


def registered(monkeypatch, name: str, **functions) -> None:
    """A corpus module made of ``functions`` (fetch, scan, check), added to the registry."""
    module = types.ModuleType(f"corpus_{name}")
    module.__dict__.update(functions)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.REGISTRY, name, module.__name__)


def test_a_new_corpus_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    calls = []

    def fetch(root, params):
        calls.append(("fetch", root))
        tone(root / "a.wav", 0.5)

    def scan(root, params):
        calls.append(("scan", root))
        return pd.DataFrame({"clip_id": ["a"], "path": [str(root / "a.wav")], "label": ["happy"], "speaker": ["s1"]})

    registered(monkeypatch, "fetched", fetch=fetch, scan=scan)
    params = Params.model_validate({"dataset": "fetched", "data": {"dir": str(tmp_path / "new")}})
    clips = scan_corpus(params)
    assert calls == [("fetch", tmp_path / "new"), ("scan", tmp_path / "new")]
    assert list(clips["clip_id"]) == ["a"]


def test_a_corpus_without_fetch_must_be_there_before_prepare(tmp_path, monkeypatch):
    registered(monkeypatch, "local", scan=lambda root, params: None)
    path = tmp_path / "params.yaml"
    path.write_text(f"dataset: local\ndata: {{dir: {tmp_path / 'missing'}}}\n")
    load_params(path)  # only prepare reads the corpus
    with pytest.raises(ConfigError, match=r"data\.dir: .*missing.* is not a folder; dataset 'local'"):
        load_params(path, need_data=True)


def test_a_corpus_check_is_run_with_the_params(tmp_path, monkeypatch):
    def check(params, need_data):
        if params.data.labels is None:
            raise ValueError("dataset 'picky' needs data.labels")

    registered(monkeypatch, "picky", scan=lambda root, params: None, check=check)
    path = tmp_path / "params.yaml"
    path.write_text("dataset: picky\n")
    with pytest.raises(ConfigError, match="dataset 'picky' needs data.labels"):
        load_params(path)
