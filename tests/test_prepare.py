"""prepare: label selection and the exclusion report (one broken clip never stops a run)."""

import pandas as pd
import pytest
from audio_fixtures import tone

from ser.audio import probe
from ser.config import Params
from ser.errors import DatasetError
from ser.prepare import build_manifest, select_labels


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
