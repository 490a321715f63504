"""File I/O: atomic writers (whole or nothing, the permissions open() gives) and why a file is not audio."""

import io
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser.artifacts import atomic_path, read_json, write_csv, write_json, write_npz
from ser.corpora.audio import decode_error, probe


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def mask(request):
    """The process umask for one test, restored afterwards."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_written_files_get_the_umask_permissions(tmp_path, mask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = [write_json(tmp_path / "a.json", {"a": 1}), write_csv(tmp_path / "b.csv", pd.DataFrame({"a": [1]})),
               write_npz(tmp_path / "c.npz", X=np.zeros(2))]
    expected = 0o666 & ~mask
    assert stat.S_IMODE(plain.stat().st_mode) == expected
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = write_json(tmp_path / "a.json", {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_text_file_is_excluded_with_a_stable_reason(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt garbage" * 3)
    assert probe(tmp_path / "notes.wav").reason == "not decodable audio: format not recognised"
    reason = probe(tmp_path / "broken.wav").reason
    assert reason.startswith("not decodable audio: error in WAV") and "0x" not in reason


def test_decode_error_drops_object_addresses():
    assert decode_error(TypeError(f"Invalid file: {io.BytesIO()!r}")) == "Invalid file: the file"
    assert decode_error(ValueError()) == "ValueError"


FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".oga": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III"),
           ".aif": ("AIFF", "PCM_16"), ".aiff": ("AIFF", "PCM_16"), ".aifc": ("AIFF", "PCM_16"),
           ".au": ("AU", "PCM_16"), ".snd": ("AU", "PCM_16"), ".w64": ("W64", "PCM_16"), ".caf": ("CAF", "PCM_16"),
           ".rf64": ("RF64", "PCM_16")}


def test_every_listed_extension_is_read_and_found_by_corpus_scanning_and_predict(tmp_path):
    """AUDIO_EXTENSIONS is what libsndfile reads: a tone in each format loads back as that tone, and
    corpus scanning and predict pick up exactly these files."""
    import soundfile as sf

    from ser.corpora.audio import AUDIO_EXTENSIONS, audio_files, load
    from ser.inference.predict import collect

    assert set(FORMATS) == AUDIO_EXTENSIONS
    sr = 48000  # what Opus runs at
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    for ext, (fmt, subtype) in FORMATS.items():
        sf.write(tmp_path / f"tone{ext.upper() if ext == '.wav' else ext}", tone, sr, format=fmt, subtype=subtype)
    (tmp_path / "notes.txt").write_text("not audio")
    for path in sorted(tmp_path.glob("tone*")):
        wave = load(path, 16000)
        assert abs(len(wave) - 16000) < 1200, path  # mp3 and opus add a few ms of codec delay
        assert 0.15 < float(np.sqrt(np.mean(wave[2000:-2000] ** 2))) < 0.25, path  # the tone, not noise
    found = sorted(Path(p).name for p in audio_files(tmp_path))
    assert found == sorted(p.name for p in tmp_path.glob("tone*")) and len(found) == len(FORMATS)
    assert sorted(Path(p).name for p, _ in collect([tmp_path])) == found
