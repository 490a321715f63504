import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from shared_paths import WHISPER_TOOL  # noqa: E402


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory) -> Path:
    """Real Whisper-base, built offline by ../shared/tools (skipped where that tool is absent)."""
    if not WHISPER_TOOL.is_file():
        pytest.skip(f"{WHISPER_TOOL} not present (../shared is only on CI and dev machines)")
    dest = tmp_path_factory.mktemp("whisper-base")
    out = subprocess.run([sys.executable, str(WHISPER_TOOL), str(dest)], capture_output=True, text=True)
    # The tool is present, so a failure is a failure (not a skip): the test must not pass without running.
    assert out.returncode == 0, f"{WHISPER_TOOL} failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}"
    return dest


