"""A throwaway clone of this working tree to run DVC in, and a bounded way to run commands there.

Used by the end-to-end tests and by ``python -m reproduce``: both run ``dvc exp run`` as a user
would, without touching the checkout they were started from.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("data/raw/", "embeddings/cache/", "dvc.lock")  # a lock from another run would only confuse
GIT_LOCATION = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX",
                "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES")


def run(cwd: Path, *args: str, check: bool = True, timeout: float = 600) -> str:
    """Run a command in ``cwd`` with this interpreter's tools first on PATH; its stdout and stderr.

    Output goes to a file, not a pipe, and the command gets its own session: a daemon it leaves
    behind (`dvc queue start`'s worker) cannot keep a pipe open that this process would wait on, and
    on timeout (or an interrupt) the whole process group is killed. Raises CommandError when it fails
    (``check``) or outlives ``timeout`` seconds.
    """
    # git variables of a caller (a hook, `git bisect run`) would point the commands here at the caller's repository
    inherited = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION}
    env = {**inherited, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "DVC_NO_ANALYTICS": "1"}
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.seek(0)
        out = log.read()
    if returncode is None:
        raise CommandError(f"{' '.join(args)} did not finish in {timeout} s, killed:\n{out[-8000:]}")
    if check and returncode != 0:
        raise CommandError(f"{' '.join(args)} failed ({returncode}):\n{out[-8000:]}")
    return out


class CommandError(AssertionError):
    """A command failed or timed out (an AssertionError, so a test shows it as a failed check)."""


def stages_run(log: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` log says it ran."""
    return set(re.findall(r"Running stage '(\w+)'", log))


def clone_worktree(dest: Path, root: Path = ROOT) -> Path:
    """Copy the files git would commit (tracked + untracked, not ignored) to ``dest`` and commit them.

    A ``dest`` cloned before is brought up to date (files changed or deleted here since), so a
    kept workdir never runs older code than the tree it was started from. Only the copied files
    are committed: the outputs and DVC cache of earlier runs there stay untracked and in place.
    """
    files = sorted(n for n in _ls_files(root, "--cached", "--others", "--exclude-standard")
                   if (root / n).is_file() and not n.startswith(SKIP))
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / ".git").is_dir():
        run(dest, "git", "init", "-q", "-b", "main")
    gone = sorted(_ls_files(dest, "--cached") - set(files))
    for name in gone:
        (dest / name).unlink(missing_ok=True)
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    _add(dest, [*files, *gone])  # a deleted path given to git add stages its removal
    run(dest, "git", "commit", "-q", "--allow-empty", "-m", "clone")
    return dest


def source_commit(root: Path = ROOT) -> str:
    """``HEAD``'s short hash, with ``-dirty`` when tracked files differ from it (what a record was measured at)."""
    head = run(root, "git", "rev-parse", "--short", "HEAD").strip()
    dirty = run(root, "git", "status", "--porcelain", "--untracked-files=no").strip()
    return f"{head}-dirty" if dirty else head


def _add(cwd: Path, names: list[str]) -> None:
    """``git add`` these paths only (read from a file: no argument-length limit)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pathspec") as spec:
        spec.write("\0".join(names))
        spec.flush()
        run(cwd, "git", "add", "-f", f"--pathspec-from-file={spec.name}", "--pathspec-file-nul")


def _ls_files(root: Path, *options: str) -> set[str]:
    return set(filter(None, run(root, "git", "ls-files", "-z", *options).split("\0")))
