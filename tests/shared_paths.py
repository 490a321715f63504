"""Where the tests find the repository and the shared corpora/tools: derived from this checkout, never
hard-coded, so a clone elsewhere (CI, another worktree) finds ../shared beside it or skips with the path."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_RAVDESS = SHARED / "data" / "ravdess-speech-16k"
SHARED_CORPORA = {"ravdess": SHARED_RAVDESS, "emovo": SHARED / "data" / "emovo-16k",
                  "nemo": SHARED / "data" / "nemo-16k", "urdu": SHARED / "data" / "urdu-16k"}
WHISPER_TOOL = SHARED / "tools" / "whisper_base_offline.py"
