"""CREMA-D: download end to end against a local server (listing, WAVs, CSV), offline failure, scan."""

import json
import logging
from pathlib import Path

import pytest
from http_server import LFS_POINTER, Server, unused_port, wav_bytes

from ser.config import Params
from ser.corpora import cremad
from ser.corpora.registry import usable
from ser.errors import DatasetError, DownloadError

CLIPS = {  # name -> (label, speaker, intensity, text)
    "1001_DFA_ANG_XX.wav": ("angry", "1001", "XX", "Don't forget a jacket"),
    "1001_IEO_HAP_HI.wav": ("happy", "1001", "HI", "It's eleven o'clock"),
    "1002_TIE_SAD_LO.wav": ("sad", "1002", "LO", "That is exactly what happened"),
    "1002_ITH_DIS_MD.wav": ("disgust", "1002", "MD", "I think I have a doctor's appointment"),
    "1003_ITS_FEA_XX.wav": ("fearful", "1003", "XX", "I think I've seen this before"),
    "1091_WSI_NEU_XX.wav": ("neutral", "1091", "XX", "We'll stop in a couple of minutes"),
}
DEMOGRAPHICS = (b"ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                b"1002,21,Female,Caucasian,Not Hispanic\n1003,21,Female,Caucasian,Not Hispanic\n"
                b"1091,29,Female,Asian,Not Hispanic\n")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def listing(names) -> bytes:
    """A GitHub tree listing: the WAVs plus entries download must ignore."""
    tree = [{"path": "AudioWAV", "type": "tree"}, {"path": "README.md", "type": "blob"},
            {"path": "VideoDemographics.csv", "type": "blob"},
            {"path": "AudioMP3/1001_DFA_ANG_XX.mp3", "type": "blob"}]
    tree += [{"path": f"AudioWAV/{name}", "type": "blob"} for name in names]
    return json.dumps({"sha": "0" * 40, "tree": tree, "truncated": False}).encode()


@pytest.fixture
def github():
    """A local stand-in for the GitHub API, media and raw hosts serving a 6-clip CREMA-D."""
    with Server() as server:
        server.add("/api/tree", listing(CLIPS), content_type="application/json")
        for i, name in enumerate(CLIPS):
            server.add(f"/media/AudioWAV/{name}", wav_bytes(seed=i))
        server.add("/raw/VideoDemographics.csv", DEMOGRAPHICS, content_type="text/csv")
        yield server


def urls(server: Server) -> dict:
    return {"api_url": server.url("/api/tree"), "media_url": server.url("/media"), "raw_url": server.url("/raw")}


def test_download_then_scan(github, tmp_path, caplog):
    root = tmp_path / "cremad"
    with caplog.at_level(logging.WARNING):
        cremad.download(root, workers=3, progress=False, **urls(github))
    assert "expected 7442" in caplog.text
    assert sorted(p.name for p in (root / "AudioWAV").iterdir()) == sorted(CLIPS)
    assert (root / "VideoDemographics.csv").read_bytes() == DEMOGRAPHICS
    assert not list(root.rglob("*.part"))

    frame = usable(cremad.scan(root, Params()))
    assert list(frame.columns) == ["clip_id", "path", "label", "speaker", "sentence", "text", "intensity",
                                   "sex", "age", "race", "ethnicity"]
    assert list(frame["clip_id"]) == sorted(Path(n).stem for n in CLIPS)
    expected = {Path(n).stem: v for n, v in CLIPS.items()}
    for row in frame.itertuples():
        assert (row.label, row.speaker, row.intensity, row.text) == expected[row.clip_id]
        assert row.sentence == row.clip_id.split("_")[1]
        assert Path(row.path).is_absolute() and Path(row.path).is_file()
    by_speaker = frame.drop_duplicates("speaker").set_index("speaker")
    assert by_speaker["sex"].to_dict() == {"1001": "male", "1002": "female", "1003": "female", "1091": "female"}
    assert by_speaker.loc["1001", "age"] == 51 and by_speaker.loc["1091", "race"] == "Asian"


def test_a_second_download_sends_no_request(github, tmp_path, caplog):
    root = tmp_path / "cremad"
    cremad.download(root, progress=False, **urls(github))
    seen = len(github.seen)
    with caplog.at_level(logging.INFO):
        cremad.download(root, progress=False, **urls(github))
    assert len(github.seen) == seen == len(CLIPS) + 2
    assert "as it is" in caplog.text


def test_an_interrupted_download_is_completed(github, tmp_path):
    root = tmp_path / "cremad"
    first, second, *_ = sorted(CLIPS)
    body = github.routes[f"/media/AudioWAV/{first}"].body
    (root / "AudioWAV").mkdir(parents=True)
    (root / "AudioWAV" / first).write_bytes(body)
    (root / "AudioWAV" / f"{second}.part").write_bytes(github.routes[f"/media/AudioWAV/{second}"].body[:500])
    cremad.download(root, progress=False, **urls(github))
    assert not github.requests_for(f"/media/AudioWAV/{first}")
    assert github.requests_for(f"/media/AudioWAV/{second}")[0].headers["Range"] == "bytes=500-"
    assert len(usable(cremad.scan(root, Params()))) == len(CLIPS)


def test_a_failed_download_leaves_no_csv_so_the_next_run_retries(github, tmp_path):
    root = tmp_path / "cremad"
    missing = sorted(CLIPS)[0]
    del github.routes[f"/media/AudioWAV/{missing}"]
    with pytest.raises(DownloadError, match=rf"1 of 6 file.*{missing}.*HTTP 404.*data\.dir"):
        cremad.download(root, progress=False, **urls(github))
    assert not (root / "VideoDemographics.csv").exists()
    assert len(list((root / "AudioWAV").glob("*.wav"))) == len(CLIPS) - 1


def test_offline_fails_fast_with_one_helpful_message(tmp_path, monkeypatch):
    """Offline: one reachability check fails and the download stops there; the listing (which retries
    with backoff) and the file downloads are never tried."""
    base = f"http://127.0.0.1:{unused_port()}"
    calls = []
    real_check = cremad.check_reachable
    monkeypatch.setattr(cremad, "check_reachable", lambda url, *a, **k: calls.append(url) or real_check(url, *a, **k))
    monkeypatch.setattr(cremad, "get_json", lambda *a, **k: calls.append("get_json"))
    monkeypatch.setattr(cremad, "download_files", lambda *a, **k: calls.append("download_files"))
    with pytest.raises(DatasetError) as err:
        cremad.download(tmp_path / "cremad", progress=False, api_url=f"{base}/api/tree",
                        media_url=f"{base}/media", raw_url=f"{base}/raw")
    assert calls == [f"{base}/api/tree"]
    message = str(err.value)
    assert f"{base}/api/tree" in message
    assert "data.dir" in message and "git lfs clone" in message
    assert "dataset=synthetic" in message and "dataset=ravdess" in message and "docs/getting-started.md" in message


def test_a_listing_error_names_the_reason(tmp_path):
    with Server() as server:
        server.add("/api/tree", b'{"message": "API rate limit exceeded"}', status=403,
                   content_type="application/json")
        with pytest.raises(DatasetError, match=r"rate limit exceeded.*data\.dir"):
            cremad.download(tmp_path, progress=False, **urls(server))


def test_a_local_copy_is_used_without_network(tmp_path):
    root = tmp_path / "copy"
    (root / "AudioWAV").mkdir(parents=True)
    (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(wav_bytes())
    (root / "VideoDemographics.csv").write_bytes(DEMOGRAPHICS)
    base = f"http://127.0.0.1:{unused_port()}"
    cremad.download(root, progress=False, api_url=base, media_url=base, raw_url=base)  # no network needed
    assert len(usable(cremad.scan(root, Params()))) == 1


def test_a_clone_without_git_lfs_is_recognised(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(LFS_POINTER)
    (tmp_path / "VideoDemographics.csv").write_bytes(DEMOGRAPHICS)
    with pytest.raises(DatasetError, match="git lfs pull"):
        cremad.download(tmp_path, progress=False)


# --------------------------------------------------------------------------- scan


def make_clips(root: Path, *names: str) -> Path:
    (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / "AudioWAV" / name).write_bytes(wav_bytes())
    return root


def test_scan_skips_badly_named_files(tmp_path, caplog):
    root = make_clips(tmp_path, "1001_DFA_ANG_XX.wav", "1002_MTI_SAD_LO.wav", "1001_DFA_XYZ_XX.wav",
                      "1001_ABC_ANG_XX.wav", "notes.wav", "._1001_DFA_ANG_XX.wav")
    (root / "AudioWAV" / "1001_IWL_HAP_HI.wav.part").write_bytes(b"partial")
    with caplog.at_level(logging.WARNING):
        frame = usable(cremad.scan(root, Params()))
    assert list(frame["clip_id"]) == ["1001_DFA_ANG_XX", "1002_MTI_SAD_LO"]
    assert list(frame["label"]) == ["angry", "sad"]
    assert list(frame["text"]) == ["Don't forget a jacket", "Maybe tomorrow it will be cold"]
    assert "skipped 3 audio file(s)" in caplog.text and "notes.wav" in caplog.text
    assert "sex" not in frame.columns  # no VideoDemographics.csv


def test_scan_only_reads_audiowav(tmp_path):
    root = make_clips(tmp_path, "1001_DFA_ANG_XX.wav")
    (root / "AudioMP3").mkdir()
    (root / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")
    (root / "AudioWAV" / "1002_DFA_ANG_XX.WAV").write_bytes(wav_bytes())
    assert list(usable(cremad.scan(root, Params()))["path"]) == [str((root / "AudioWAV" / n).resolve())
                                               for n in ("1001_DFA_ANG_XX.wav", "1002_DFA_ANG_XX.WAV")]


def test_scan_with_actors_missing_from_the_csv(tmp_path, caplog):
    root = make_clips(tmp_path, "1001_DFA_ANG_XX.wav", "1050_DFA_ANG_XX.wav")
    (root / "VideoDemographics.csv").write_bytes(DEMOGRAPHICS)
    with caplog.at_level(logging.WARNING):
        frame = usable(cremad.scan(root, Params())).set_index("speaker")
    assert frame.loc["1001", "sex"] == "male" and frame["sex"].isna().loc["1050"]
    assert "1 actor(s) not in VideoDemographics.csv" in caplog.text


def test_scan_ignores_an_unusable_csv(tmp_path, caplog):
    root = make_clips(tmp_path, "1001_DFA_ANG_XX.wav")
    (root / "VideoDemographics.csv").write_bytes(b"Name,Whatever\nx,y\n")
    with caplog.at_level(logging.WARNING):
        frame = usable(cremad.scan(root, Params()))
    assert "sex" not in frame.columns and "lacks the column(s)" in caplog.text


@pytest.mark.parametrize("setup, match", [
    (lambda root: None, r"AudioWAV does not exist.*data\.dir"),
    (lambda root: (root / "AudioWAV").mkdir(parents=True), r"no WAV files in .*AudioWAV"),
    (lambda root: make_clips(root, "readme.wav"), r"none of the 1 WAV files .*named like"),
])
def test_scan_errors_name_the_folder(tmp_path, setup, match):
    root = tmp_path / "cremad"
    setup(root)
    with pytest.raises(DatasetError, match=match):
        usable(cremad.scan(root, Params()))


def test_scan_hints_when_data_dir_is_audiowav_itself(tmp_path):
    root = make_clips(tmp_path, "1001_DFA_ANG_XX.wav") / "AudioWAV"
    with pytest.raises(DatasetError, match="folder above AudioWAV"):
        usable(cremad.scan(root, Params()))
