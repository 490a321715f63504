"""The params.yaml this repository ships (HEAD), not the workspace copy that ``dvc exp run -S`` rewrites."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_params(dest: Path) -> Path:
    """Write params.yaml as committed to ``dest/params.yaml`` (the workspace file outside a git checkout)."""
    try:
        text = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        text = (ROOT / "params.yaml").read_text()
    path = dest / "params.yaml"
    path.write_text(text)
    return path
