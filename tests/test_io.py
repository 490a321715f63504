"""File I/O: atomic writers (whole or nothing, the permissions open() gives) and why a file is not audio."""

import io
import os
import stat

import numpy as np
import pandas as pd
import pytest

from ser.audio import decode_error, probe
from ser.io import atomic_path, read_json, write_csv, write_json, write_npz


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
