"""Every command of docs/getting-started.md, run in order in a clone of this tree on generated audio, as a
new user would type it; a command the page marks ``# not run by the tests: <why>`` is left out and says why."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from model_fixtures import tiny_whisper

from reproduce.workspace import ROOT, clone_worktree, run

PAGE = ROOT / "docs" / "getting-started.md"
NOT_RUN = "# not run by the tests:"
RAVDESS_CODES = {"neutral": "01", "happy": "03", "sad": "04", "angry": "05"}


def commands(text: str) -> list[str]:
    """The commands of the page's ```bash blocks, one per line (a trailing backslash joins lines)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        found += [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    return found


def test_every_command_left_out_says_why():
    listed = commands(PAGE.read_text())
    assert len(listed) >= 8, listed
    for command in listed:
        if NOT_RUN in command:
            assert len(command.split(NOT_RUN, 1)[1].strip()) > 10, f"say why it is not run: {command}"


def corpora(root: Path) -> dict[str, Path]:
    """A RAVDESS-layout corpus and a label-folder corpus, of generated speech-like clips."""
    from ser.corpora import synthetic

    synthetic.generate(root / "gen", speakers=6, clips=3, classes=list(RAVDESS_CODES), duration=1.5, seed=3)
    ravdess, mine = root / "ravdess", root / "my_corpus"
    for wav in sorted((root / "gen").glob("*.wav")):
        speaker, label, k = wav.stem.split("_")
        actor = int(speaker[3:]) + 1
        name = f"03-01-{RAVDESS_CODES[label]}-01-0{int(k) // 2 + 1}-0{int(k) % 2 + 1}-{actor:02d}.wav"
        (ravdess / f"Actor_{actor:02d}").mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, ravdess / f"Actor_{actor:02d}" / name)
        (mine / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, mine / label / wav.name)
    return {"PATH/TO/ravdess": ravdess, "PATH/TO/my_corpus": mine}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_getting_started_page_runs_as_written(tmp_path):
    repo = clone_worktree(tmp_path / "clone")
    places = {**corpora(tmp_path), "/tmp/whisper-base": tiny_whisper(tmp_path / "whisper-base")}
    ran = []
    for command in commands(PAGE.read_text()):
        if NOT_RUN in command:
            continue
        for placeholder, path in places.items():
            command = command.replace(placeholder, str(path))
        run(repo, "bash", "-c", command, timeout=600)
        ran.append(command)
        if command.startswith("python -m stages.predict"):
            out = pd.read_csv(repo / "predictions.csv")
            assert out["error"].isna().all() and set(out["predicted"]) <= {"angry", "happy", "neutral", "sad",
                                                                          "unknown"}, out
    assert any("dataset=folder" in c for c in ran) and any("features.extractor=whisper" in c for c in ran)
    assert '"dataset": "folder"' in (repo / "results/metrics.json").read_text()
