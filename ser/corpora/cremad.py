"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset), the WAV audio.

Layout: ``AudioWAV/AAAA_SSS_EEE_II.wav`` (7442 clips) and ``VideoDemographics.csv``, where AAAA is the
actor (1001-1091), SSS one of 12 sentences, EEE one of 6 emotions and II the intensity (LO, MD, HI,
XX = unspecified). The audio lives in Git LFS, so ``fetch`` (:func:`download`) takes the file list
from the GitHub API and the files from GitHub's media host.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pandas as pd

from ser.corpora._files import _frame, _report_skipped, with_skipped
from ser.corpora.download import DownloadJob, download_files
from ser.corpora.emotions import canonical
from ser.corpora.http import check_reachable, get_json
from ser.corpora.verify import verify_csv, verify_wav
from ser.errors import DatasetError, DownloadError

if TYPE_CHECKING:
    from ser.config import Params

log = logging.getLogger(__name__)

REPO = "CheyneyComputerScience/CREMA-D"
API_URL = f"https://api.github.com/repos/{REPO}/git/trees/master?recursive=1"
MEDIA_URL = f"https://media.githubusercontent.com/media/{REPO}/master"
RAW_URL = f"https://raw.githubusercontent.com/{REPO}/master"
AUDIO_DIR = "AudioWAV"
DEMOGRAPHICS = "VideoDemographics.csv"
EXPECTED_CLIPS = 7442
LAYOUT = "AudioWAV/AAAA_SSS_EEE_II.wav, e.g. AudioWAV/1001_DFA_ANG_XX.wav"
DOCS = "docs/getting-started.md and docs/corpora/"
LOCAL_COPY_HINT = (f"download CREMA-D elsewhere (git lfs clone https://github.com/{REPO}) and set data.dir "
                   f"in params.yaml to the folder holding {AUDIO_DIR}/ and {DEMOGRAPHICS}")

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
EMOTIONS = frozenset({"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"})
INTENSITIES = frozenset({"LO", "MD", "HI", "XX"})
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
# VideoDemographics.csv column -> clip table column
DEMOGRAPHIC_COLUMNS = {"Sex": "sex", "Age": "age", "Race": "race", "Ethnicity": "ethnicity"}


# --------------------------------------------------------------------------- download


def _wavs(folder: Path) -> list[Path]:
    """The WAV files directly in ``folder`` (hidden files, e.g. macOS ``._x.wav``, left out), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() == ".wav" and not p.name.startswith(".") and p.is_file())


def _check_not_lfs_pointers(wavs: list[Path]) -> None:
    """A ``git clone`` without Git LFS leaves small text pointers named .wav: say so at once."""
    for path in wavs[:3]:
        with path.open("rb") as f:
            if f.read(24).startswith(b"version https://git-lfs"):
                raise DatasetError(f"{path} is a Git LFS pointer, not audio: run `git lfs pull` in "
                                   f"{path.parent.parent} (or delete {path.parent} to download CREMA-D)")


def _local_copy(root: Path) -> bool:
    """True when ``root`` already holds the corpus (WAVs and the demographics CSV)."""
    wavs = _wavs(root / AUDIO_DIR)
    if not wavs or not (root / DEMOGRAPHICS).is_file():
        return False
    _check_not_lfs_pointers(wavs)
    log.info("CREMA-D: using the copy in %s as it is (%d WAV files); delete %s to download again",
             root, len(wavs), root / DEMOGRAPHICS)
    return True


def _check_online(*urls: str) -> None:
    """Fail within seconds, with one message that says how to go on offline."""
    for url in urls:
        try:
            check_reachable(url)
        except DownloadError as exc:
            raise DatasetError(f"cannot download CREMA-D: {exc}. Without internet access, {LOCAL_COPY_HINT}; or try "
                               f"the pipeline on generated audio (`dvc exp run -S dataset=synthetic -S "
                               f"features.extractor=mfcc`, a minute), or on a corpus on disk (`-S dataset=ravdess|"
                               f"emodb|tess|savee|emovo|nemo|urdu|folder -S data.dir=PATH`); see {DOCS}") from exc


def _listing(api_url: str) -> list[str]:
    """File names of ``AudioWAV/*.wav`` in the repository tree listing."""
    try:
        tree = get_json(api_url)
    except DownloadError as exc:
        raise DatasetError(f"cannot list the CREMA-D files: {exc}. Try again later, or {LOCAL_COPY_HINT}") from exc
    if not isinstance(tree, dict):
        raise DatasetError(f"the listing at {api_url} is not a GitHub tree (a JSON object); {LOCAL_COPY_HINT}")
    if tree.get("truncated"):
        log.warning("CREMA-D: the file listing from %s is truncated", api_url)
    names = sorted({PurePosixPath(item["path"]).name for item in tree.get("tree", [])
                    if _is_audio_entry(item.get("path", ""))})
    if not names:
        raise DatasetError(f"the listing at {api_url} holds no {AUDIO_DIR}/*.wav files; {LOCAL_COPY_HINT}")
    if len(names) != EXPECTED_CLIPS:
        log.warning("CREMA-D: the listing holds %d WAV files, expected %d", len(names), EXPECTED_CLIPS)
    return names


def _is_audio_entry(path: str) -> bool:
    p = PurePosixPath(path)
    return len(p.parts) == 2 and p.parts[0] == AUDIO_DIR and p.suffix.lower() == ".wav"


def download(root: Path, *, workers: int = 8, api_url: str = API_URL, media_url: str = MEDIA_URL,
             raw_url: str = RAW_URL, progress: bool = True) -> None:
    """Fetch CREMA-D into ``root`` (``AudioWAV/`` + ``VideoDemographics.csv``) unless it is there.

    Resumable: files already downloaded and valid are kept. The CSV is fetched last, so its
    presence marks a complete download (or a local copy) and the next call does nothing.
    """
    root = Path(root)
    if _local_copy(root):
        return
    _check_online(api_url, media_url, raw_url)
    names = _listing(api_url)
    log.info("CREMA-D: downloading %d WAV files to %s", len(names), root / AUDIO_DIR)
    audio = [DownloadJob(f"{media_url.rstrip('/')}/{AUDIO_DIR}/{name}", root / AUDIO_DIR / name, verify_wav)
             for name in names]
    csv = DownloadJob(f"{raw_url.rstrip('/')}/{DEMOGRAPHICS}", root / DEMOGRAPHICS, verify_csv)
    try:
        download_files(audio, workers=workers, progress=progress)
        download_files([csv], workers=1, progress=False)
    except DownloadError as exc:
        raise DownloadError(f"CREMA-D: {exc}. Run again to resume (finished files are kept), "
                            f"or {LOCAL_COPY_HINT}") from exc


def fetch(root: Path, params: Params) -> None:
    """:func:`download` with ``data.workers`` parallel downloads."""
    download(root, workers=params.data.workers)


# --------------------------------------------------------------------------- scan


def _parse(path: Path) -> dict | None:
    m = NAME.match(path.stem)
    if not m or m[2] not in SENTENCES or m[3] not in EMOTIONS or m[4] not in INTENSITIES:
        return None
    actor, sentence, emotion, intensity = m.groups()
    return {"clip_id": path.stem, "path": str(path.resolve()), "label": canonical(emotion), "speaker": actor,
            "sentence": sentence, "text": SENTENCES[sentence], "intensity": intensity}


def _demographics(csv: Path) -> pd.DataFrame | None:
    """Actor table indexed by actor id (str), or None (with a warning) when the CSV is unusable."""
    try:
        table = pd.read_csv(csv, encoding="utf-8-sig", skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("CREMA-D: cannot read %s (%s): no sex/age/race columns", csv, exc)
        return None
    missing = {"ActorID", *DEMOGRAPHIC_COLUMNS} - set(table.columns)
    if missing:
        log.warning("CREMA-D: %s lacks the column(s) %s: no demographic columns", csv, sorted(missing))
        return None
    table = table.rename(columns=DEMOGRAPHIC_COLUMNS)
    table["sex"] = table["sex"].astype(str).str.strip().str.lower()
    return table.assign(speaker=table["ActorID"].astype(str).str.strip()).set_index("speaker")[
        list(DEMOGRAPHIC_COLUMNS.values())]


def _join_demographics(frame: pd.DataFrame, csv: Path) -> pd.DataFrame:
    table = _demographics(csv) if csv.is_file() else None
    if table is None:
        return frame
    unknown = sorted(set(frame["speaker"]) - set(table.index))
    if unknown:
        log.warning("CREMA-D: %d actor(s) not in %s, e.g. %s", len(unknown), csv.name, unknown[:5])
    table = table[~table.index.duplicated()]
    return frame.join(table, on="speaker")


def scan(root: Path, params: Params) -> pd.DataFrame:
    """One row per ``root/AudioWAV/*.wav`` clip; speaker is the actor id "1001".."1091".

    Columns: clip_id, path, label, speaker, sentence, text (the sentence spoken), intensity, and sex, age, race,
    ethnicity when ``root/VideoDemographics.csv`` exists. No audio is read.
    """
    root = Path(root)
    folder = root / AUDIO_DIR
    if not folder.is_dir():
        hint = " (set it to the folder above AudioWAV/)" if root.name == AUDIO_DIR else ""
        raise DatasetError(f"CREMA-D folder {folder.resolve()} does not exist: set data.dir in params.yaml"
                           f"{hint} to the folder holding {AUDIO_DIR}/ and {DEMOGRAPHICS}, or leave it "
                           f"null to download CREMA-D")
    wavs = _wavs(folder)
    if not wavs:
        raise DatasetError(f"no WAV files in {folder.resolve()}: expected {LAYOUT}; delete the folder to "
                           f"download CREMA-D again, or point data.dir in params.yaml to a complete copy")
    rows, skipped = [], []
    for path in wavs:
        row = _parse(path)
        if row is None:
            skipped.append(path)
        else:
            rows.append(row)
    _report_skipped(skipped, "CREMA-D", LAYOUT)
    if not rows:
        raise DatasetError(f"none of the {len(skipped)} WAV files in {folder.resolve()} is named like a "
                           f"CREMA-D clip ({LAYOUT})")
    return with_skipped(_join_demographics(_frame(rows, "CREMA-D", root, LAYOUT), root / DEMOGRAPHICS), skipped,
                        f"not named like a CREMA-D clip ({LAYOUT})")
