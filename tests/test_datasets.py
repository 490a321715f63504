"""Corpus parsers: file names -> clip table (labels, speakers, extras), skips and DatasetError cases."""

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from shared_paths import SHARED_CORPORA, SHARED_RAVDESS

from ser.config import Params
from ser.corpora import emodb, emovo, folder, nemo, ravdess, savee, tess, urdu
from ser.corpora.registry import usable
from ser.errors import DatasetError

COLUMNS = ["clip_id", "path", "label", "speaker"]
PARAMS = Params()  # data.csv null: the folder corpus reads label folders


def clip(path: Path) -> Path:
    """0.2 s of noise at 16 kHz, in the format the extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(0).standard_normal(3200).astype(np.float32)
    sf.write(path, noise, 16000, format=path.suffix[1:].upper())
    return path


def clips(root: Path, *names: str) -> Path:
    for name in names:
        clip(root / name)
    return root


def check_frame(frame, rows: int):
    """The usable clips of a scan (its rows without a reason), checked; ``rows`` of them."""
    assert list(frame.columns[:4]) == COLUMNS and "reason" in frame
    frame = frame[frame["reason"] == ""].drop(columns="reason").reset_index(drop=True)
    assert len(frame) == rows
    assert frame["clip_id"].is_unique and frame["clip_id"].is_monotonic_increasing
    assert frame["path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    return frame


def listing(csv: Path) -> Params:
    """Params of the folder corpus read from ``csv``."""
    return Params(dataset="folder", data={"csv": str(csv)})


def warnings(caplog) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_ravdess(tmp_path, caplog):
    root = clips(tmp_path / "ravdess",
                 "Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-01-05-02-02-01-01.flac",
                 "Actor_02/03-01-08-02-01-02-02.WAV",
                 "audio_speech_actors_01-24/Actor_01/03-01-01-01-01-01-01.wav",  # nested second copy
                 "Actor_01/03-01-09-01-01-01-01.wav", "Actor_01/notes.wav",  # not RAVDESS names
                 "__MACOSX/Actor_01/._03-01-01-01-01-01-01.wav")  # unzip debris, ignored
    (root / "Actor_01" / "readme.txt").write_text("not audio")
    with caplog.at_level(logging.WARNING):
        frame = ravdess.scan(root, PARAMS)
    frame = check_frame(frame, 3)
    assert list(frame["clip_id"]) == ["03-01-01-01-01-01-01", "03-01-05-02-02-01-01", "03-01-08-02-01-02-02"]
    assert list(frame["label"]) == ["neutral", "angry", "surprised"]
    assert list(frame["speaker"]) == ["01", "01", "02"]
    assert list(frame["sex"]) == ["male", "male", "female"]
    assert list(frame["intensity"]) == ["normal", "strong", "strong"]
    assert list(frame["sentence"]) == ["01", "02", "01"]
    assert list(frame["repetition"]) == [1, 1, 2]
    assert frame["path"][0] == str((root / "Actor_01/03-01-01-01-01-01-01.wav").resolve())
    assert "skipped 2 audio file(s)" in warnings(caplog)
    reported = ravdess.scan(root, PARAMS).set_index("clip_id")["reason"]  # nothing left out without a trace
    assert reported["notes"].startswith("not named like a RAVDESS clip")
    assert reported["03-01-09-01-01-01-01"].startswith("not named like a RAVDESS clip")


@pytest.mark.skipif(not SHARED_RAVDESS.is_dir(), reason=f"shared RAVDESS copy {SHARED_RAVDESS} not present")
def test_ravdess_shared_copy():
    frame = ravdess.scan(SHARED_RAVDESS, PARAMS)
    frame = check_frame(frame, 1440)
    assert frame["label"].nunique() == 8 and frame["speaker"].nunique() == 24
    assert (frame["label"] == "neutral").sum() == 96
    assert frame.groupby("sex")["speaker"].nunique().to_dict() == {"female": 12, "male": 12}


def test_tess(tmp_path, caplog):
    root = clips(tmp_path / "tess",
                 "OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_bath_ps.wav",
                 "OAF_Pleasant_surprise/OAF_chain_pleasant_surprise.wav", "OAF_Fear/OAF_dog_fear.wav",
                 "YAF_neutral/YAF_Kite_Neutral.wav",
                 "YAF_sad/YAF_home_sadd.wav",  # misspelt emotion: the folder says sad
                 "OAF_angry/back.wav", "OAF_angry/XYZ_back_angry.wav")  # not TESS names
    with caplog.at_level(logging.WARNING):
        frame = check_frame(tess.scan(root, PARAMS), 6).set_index("clip_id")
    assert frame["label"].to_dict() == {
        "OAF_back_angry": "angry", "YAF_bath_ps": "surprised", "OAF_chain_pleasant_surprise": "surprised",
        "OAF_dog_fear": "fearful", "YAF_Kite_Neutral": "neutral", "YAF_home_sadd": "sad"}
    assert frame["word"].to_dict() == {"OAF_back_angry": "back", "YAF_bath_ps": "bath",
                                       "OAF_chain_pleasant_surprise": "chain", "OAF_dog_fear": "dog",
                                       "YAF_Kite_Neutral": "kite", "YAF_home_sadd": "home"}
    assert set(frame["speaker"]) == {"OAF", "YAF"} and set(frame["sex"]) == {"female"}
    assert "skipped 2 audio file(s)" in warnings(caplog)


def test_savee_both_layouts(tmp_path, caplog):
    root = clips(tmp_path / "savee",
                 "AudioData/DC/a01.wav", "AudioData/JE/sa03.wav", "AudioData/KL/su15.wav",
                 "ALL/JK_n30.wav", "ALL/DC_a01.wav",  # DC_a01 again, in the Kaggle layout
                 "AudioData/DC/x01.wav", "AudioData/a01.wav")  # unknown prefix; no speaker folder
    (root / "AudioData" / "DC" / "Info.txt").write_text("not audio")
    with caplog.at_level(logging.WARNING):
        frame = savee.scan(root, PARAMS)
    frame = check_frame(frame, 4)
    assert list(frame["clip_id"]) == ["DC_a01", "JE_sa03", "JK_n30", "KL_su15"]
    assert list(frame["label"]) == ["angry", "sad", "neutral", "surprised"]
    assert list(frame["speaker"]) == ["DC", "JE", "JK", "KL"]
    assert set(frame["sex"]) == {"male"}
    assert "skipped 2 audio file(s)" in warnings(caplog)


def test_emodb(tmp_path, caplog):
    root = clips(tmp_path / "emodb",
                 "wav/03a01Fa.wav", "wav/08b02Wb.wav", "wav/16a05Lc.wav", "wav/12b10Ta.wav",
                 "wav/03a01Xa.wav", "wav/99a01Fa.wav")  # unknown emotion letter; unknown speaker
    with caplog.at_level(logging.WARNING):
        frame = emodb.scan(root, PARAMS)
    frame = check_frame(frame, 4)
    assert list(frame["clip_id"]) == ["03a01Fa", "08b02Wb", "12b10Ta", "16a05Lc"]
    assert list(frame["label"]) == ["happy", "angry", "sad", "boredom"]
    assert list(frame["speaker"]) == ["03", "08", "12", "16"]
    assert list(frame["sentence"]) == ["a01", "b02", "b10", "a05"]
    assert list(frame["sex"]) == ["male", "female", "male", "female"]
    assert list(frame["age"]) == [31, 34, 30, 31]
    assert "skipped 2 audio file(s)" in warnings(caplog)


def test_emovo(tmp_path, caplog):
    root = clips(tmp_path / "emovo", "f1/dis-f1-b1.wav", "f1/gio-f1-l4.flac", "m3/rab-m3-n5.wav", "m2/TRI-m2-d1.wav",
                 "f2/xyz-f2-b1.wav", "f2/dis-f4-b1.wav", "f2/notes.wav")  # unknown emotion, actor; not a name
    with caplog.at_level(logging.WARNING):
        frame = check_frame(emovo.scan(root, PARAMS), 4).set_index("clip_id")
    assert frame["label"].to_dict() == {"dis-f1-b1": "disgust", "gio-f1-l4": "happy", "rab-m3-n5": "angry",
                                        "TRI-m2-d1": "sad"}
    assert frame["speaker"].to_dict() == {"dis-f1-b1": "f1", "gio-f1-l4": "f1", "rab-m3-n5": "m3", "TRI-m2-d1": "m2"}
    assert frame["sex"].to_dict() == {"dis-f1-b1": "female", "gio-f1-l4": "female", "rab-m3-n5": "male",
                                      "TRI-m2-d1": "male"}
    assert frame["sentence"].to_dict() == {"dis-f1-b1": "b1", "gio-f1-l4": "l4", "rab-m3-n5": "n5", "TRI-m2-d1": "d1"}
    assert "skipped 3 audio file(s)" in warnings(caplog)


NEMO_TSV = ("file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
            "EB0_anger_1.wav\tanger\tLubię czytać przed snem.\tlubię czytać przed snem\t        EB0\tfemale\t27\n"
            "KS0_surprised_3.wav\tsurprised\t„Cześć”, powiedział.\tcześć powiedział\t        KS0\tmale\t31\n"
            "MP0_fear_2.wav\tsadness\tTak.\ttak\t        MP0\tmale\t40\n")


def test_nemo(tmp_path, caplog):
    root = clips(tmp_path / "nemo", "samples/EB0_anger_1.flac", "samples/KS0_surprised_3.wav",
                 "samples/MP0_fear_2.wav",  # data.tsv says sadness
                 "samples/WR0_neutral_9.wav",  # not in data.tsv
                 "samples/readme.wav")  # not a name
    (root / "data.tsv").write_text(NEMO_TSV, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        listed = nemo.scan(root, PARAMS)
    frame = check_frame(listed, 2).set_index("clip_id")
    assert frame["label"].to_dict() == {"EB0_anger_1": "angry", "KS0_surprised_3": "surprised"}
    assert frame["speaker"].to_dict() == {"EB0_anger_1": "EB0", "KS0_surprised_3": "KS0"}
    assert frame["text"].to_dict() == {"EB0_anger_1": "lubię czytać przed snem", "KS0_surprised_3": "cześć powiedział"}
    assert frame.loc["KS0_surprised_3", "raw_text"] == "„Cześć”, powiedział."
    assert frame["sex"].tolist() == ["female", "male"] and frame["age"].tolist() == [27, 31]
    reasons = listed.set_index("clip_id")["reason"]
    assert reasons["MP0_fear_2"].startswith("data.tsv says speaker MP0, emotion sadness")
    assert reasons["WR0_neutral_9"] == "not listed in nEMO's data.tsv"
    assert "skipped 1 audio file(s)" in warnings(caplog)


def test_nemo_without_its_metadata_names_the_file(tmp_path):
    root = clips(tmp_path / "nemo", "samples/EB0_anger_1.wav")
    with pytest.raises(DatasetError, match=r"nEMO's data.tsv .* is not in .*data.dir"):
        nemo.scan(root, PARAMS)
    (root / "data.tsv").write_text("file_id\tlabel\nEB0_anger_1.wav\tanger\n")
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['emotion'"):
        nemo.scan(root, PARAMS)


def test_urdu(tmp_path, caplog):
    root = clips(tmp_path / "urdu", "Angry/SM1_F19_A019.wav", "Happy/SF10_F2_H02.flac", "Sad/SM24_F1_S01.wav",
                 "Neutral/sm5_F3_N12.wav",
                 "Sad/SM2_F4_A004.wav",  # angry by its name, in the Sad folder
                 "Sad/S1_F1_S01.wav", "Other/SM1_F1_A001.wav")  # no sex letter; not an emotion folder
    with caplog.at_level(logging.WARNING):
        listed = urdu.scan(root, PARAMS)
    frame = check_frame(listed, 4).set_index("clip_id")
    assert frame["label"].to_dict() == {"SM1_F19_A019": "angry", "SF10_F2_H02": "happy", "SM24_F1_S01": "sad",
                                        "sm5_F3_N12": "neutral"}
    assert frame["speaker"].to_dict() == {"SM1_F19_A019": "SM1", "SF10_F2_H02": "SF10", "SM24_F1_S01": "SM24",
                                          "sm5_F3_N12": "SM5"}
    assert frame["sex"].tolist() == ["female", "male", "male", "male"]
    assert listed.set_index("clip_id").loc["SM2_F4_A004", "reason"] == \
        "URDU file name says angry (A) but its folder says sad"
    assert "skipped 2 audio file(s)" in warnings(caplog)


@pytest.mark.parametrize("name, parser, clips_, speakers, labels", [
    ("emovo", emovo, 588, 6, 7), ("nemo", nemo, 2245, 9, 6), ("urdu", urdu, 400, 29, 4)])
def test_shared_copies(name, parser, clips_, speakers, labels):
    root = SHARED_CORPORA[name]
    if not root.is_dir():
        pytest.skip(f"shared {name} copy {root} not present")
    frame = check_frame(parser.scan(root, PARAMS), clips_)
    assert frame["speaker"].nunique() == speakers and frame["label"].nunique() == labels
    if name == "nemo":
        assert (frame["text"] != "").all() and frame.loc[frame["speaker"] == "MK0", "label"].nunique() == 5


def test_folder_of_label_folders(tmp_path, caplog):
    root = clips(tmp_path / "mine", "happy/a.wav", "Sad/take1/b.flac", "angry/a.wav", "loose.wav")
    with caplog.at_level(logging.WARNING):
        frame = folder.scan(root, PARAMS)
    frame = check_frame(frame, 3)
    assert dict(zip(frame["clip_id"], frame["label"])) == {"happy/a.wav": "happy", "Sad/take1/b.flac": "sad",
                                                          "angry/a.wav": "angry"}
    assert set(frame["speaker"]) == {"unknown"}
    log = warnings(caplog)
    assert "skipped 1 audio file(s)" in log  # no speakers: prepare's feasibility check stops it (test_corpora)


def test_folder_csv(tmp_path, caplog):
    clip(tmp_path / "audio" / "one.wav")
    elsewhere = clip(tmp_path / "other" / "two.flac")
    csv = tmp_path / "lists" / "clips.csv"
    csv.parent.mkdir()
    csv.write_text("path,label,speaker,gender\n"
                   f"../audio/one.wav,Happiness,01,f\n{elsewhere},excited,02,m\n../audio/gone.wav,sad,01,f\n")
    with caplog.at_level(logging.WARNING):
        frame = usable(folder.scan(tmp_path / "unused", listing(csv))).set_index("clip_id")
    assert list(frame.reset_index().columns) == [*COLUMNS, "gender"]
    assert frame["label"].to_dict() == {"../audio/one.wav": "happy", str(elsewhere): "excited",
                                        "../audio/gone.wav": "sad"}
    # a missing file stays listed: the generic clip reader excludes it as unreadable
    assert frame.loc["../audio/gone.wav", "path"] == str(tmp_path / "audio" / "gone.wav")
    assert frame["speaker"].tolist() == ["01", "01", "02"] and frame["gender"].tolist() == ["f", "f", "m"]
    assert "1 listed file(s) do not exist" in warnings(caplog)


def test_speaker_counts_say_when_a_corpus_has_no_speaker_ids():
    import pandas as pd

    from ser.corpora.emotions import speakers_phrase

    assert speakers_phrase(pd.Series(["unknown"] * 3)) == "no speaker ids"  # not "1 speakers"
    assert speakers_phrase(pd.Series(["a", "a"])) == "1 speaker"
    assert speakers_phrase(pd.Series(["a", "b", "unknown"])) == "2 speakers (and clips without a speaker id)"


def test_a_data_csv_inside_data_dir_is_read_not_its_sub_folders(tmp_path, caplog):
    """A user who puts data.csv in data.dir (as the datasets table names it) gets its rows and speakers, not
    one class named after the sub-folder holding the audio."""
    root = clips(tmp_path / "mine", "audio/a.wav", "audio/b.wav")
    (root / "data.csv").write_text("path,label,speaker\naudio/a.wav,happy,s1\naudio/b.wav,sad,s2\n")
    with caplog.at_level(logging.INFO):
        frame = folder.scan(root, PARAMS)
    assert dict(zip(frame["clip_id"], frame["label"])) == {"audio/a.wav": "happy", "audio/b.wav": "sad"}
    assert frame["speaker"].tolist() == ["s1", "s2"] and "data.dir holds data.csv" in caplog.text


def test_folder_csv_alternative_header(tmp_path, caplog):
    clip(tmp_path / "x.wav")
    csv = tmp_path / "list.csv"
    csv.write_text("file_path,emotion_code\nx.wav,ANG\n")
    with caplog.at_level(logging.WARNING):
        frame = folder.scan(tmp_path, listing(csv))
    assert frame[COLUMNS].values.tolist() == [["x.wav", str(tmp_path / "x.wav"), "angry", "unknown"]]


@pytest.mark.parametrize("text, error", [
    ("path,speaker\nx.wav,01\n", r"lacks the column\(s\) \['label'\]: found \['path', 'speaker'\]"),
    ("path,label\nx.wav,sad\nx.wav,happy\n", "repeat a path"),
    ("path,label\n", "lists no clips"),
    ("", r"lacks the column\(s\) \['path', 'label'\]"),
])
def test_folder_csv_errors(tmp_path, text, error):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(DatasetError, match=error) as err:
        folder.scan(tmp_path, listing(csv))
    assert str(csv) in str(err.value)


def test_folder_csv_missing(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*data.csv"):
        folder.scan(tmp_path, listing(tmp_path / "nope.csv"))


PARSERS = [ravdess, tess, savee, emodb, emovo, nemo, urdu, folder]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_missing_folder(tmp_path, parser):
    root = tmp_path / "not-here"
    with pytest.raises(DatasetError) as err:
        parser.scan(root, PARAMS)
    message = str(err.value)
    assert str(root) in message and "data.dir" in message and "params.yaml" in message and "layout" in message


@pytest.mark.parametrize("parser", PARSERS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_no_matching_files(tmp_path, parser):
    root = clips(tmp_path / "corpus", "random.wav")  # directly in the root: no corpus names, no label folder
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="data.dir") as err:
        parser.scan(root, PARAMS)
    assert str(root) in str(err.value)
    with pytest.raises(DatasetError, match="no .* clips found"):
        parser.scan(root / "empty", PARAMS)


def test_ravdess_song_clips_are_left_out_with_the_reason(tmp_path):
    root = clips(tmp_path / "ravdess", "Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-02-03-01-01-01-01.wav")
    frame = ravdess.scan(root, PARAMS).set_index("clip_id")
    assert frame.loc["03-01-01-01-01-01-01", "reason"] == ""
    assert frame.loc["03-02-03-01-01-01-01", "reason"] == "RAVDESS vocal channel 02 (song), not speech"


def test_folder_csv_that_is_not_utf8_names_the_fix(tmp_path):
    clip(tmp_path / "a.wav")
    csv = tmp_path / "clips.csv"
    csv.write_bytes("path,label\na.wav,fâché\n".encode("cp1252"))
    with pytest.raises(DatasetError, match=r"not UTF-8 text \(byte 0xe2 at offset 18\).*CSV UTF-8"):
        folder.scan(tmp_path, listing(csv))
    csv.write_text("path,label\na.wav,fâché\n", encoding="utf-8-sig")  # Excel's "CSV UTF-8" writes a BOM
    assert usable(folder.scan(tmp_path, listing(csv)))["label"].tolist() == ["fâché"]
