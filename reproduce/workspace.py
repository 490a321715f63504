"""A throwaway clone of this working tree to run DVC in, and a bounded way to run commands there.

Used by the end-to-end tests and by ``python -m reproduce``: both run ``dvc exp run`` as a user
would, without touching the checkout they were started from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("data/raw/", "embeddings/cache/", "dvc.lock")  # a lock from another run would only confuse


def run(cwd: Path, *args: str, check: bool = True, timeout: float = 1800) -> str:
    """Run a command in ``cwd`` with this interpreter's tools first on PATH; stdout + stderr.

    Output goes to pipes that only this call holds and every wait is bounded by ``timeout``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out.stdout + out.stderr


def stages_run(log: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` log says it ran."""
    return set(re.findall(r"Running stage '(\w+)'", log))


def clone_worktree(dest: Path, root: Path = ROOT) -> Path:
    """Copy the files git would commit (tracked + untracked, not ignored) to ``dest`` and commit them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = root / name
        if src.is_file() and not name.startswith(SKIP):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    run(dest, "git", "init", "-q", "-b", "main")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-qm", "clone")
    return dest
