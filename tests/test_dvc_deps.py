"""dvc.yaml names every library module whose code can change a stage's outputs, and nothing stale.

Each stage's ``stages/<name>.py`` is followed through its ``ser`` imports (static, ``ast``: imports
inside functions count, a package import counts its ``__init__.py``, and a registry's module names
count as imports, since ``get()`` imports them); every module reached must be a dep of the stage
(the file or a folder above it) unless :data:`EXEMPT` says why it cannot change an output, or it is
a package ``__init__.py`` that holds only its docstring.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

EXEMPT = {
    "ser/__init__.py": "the package docstring and version string, which no stage reads",
    "ser/errors.py": "exception classes: they decide what a failure says, never what a stage writes",
    "ser/stage.py": "run_stage: logging setup and the exit code on a user error",
}
# Imports not followed: config reads the registries' names and the components' params models (which
# DVC tracks as params values); a stage that runs a component imports its package itself.
NOT_FOLLOWED = {"ser/config.py": ("ser/models/classifiers/", "ser/corpora/", "ser/features/")}
MODULE_NAME = re.compile(r"^ser(\.\w+)+$")


def module_file(name: str) -> str | None:
    """``ser.models.cv`` -> ``ser/models/cv.py``, ``ser.features`` -> ``ser/features/__init__.py``; None if none."""
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.relative_to(ROOT).as_posix()
    return None


def with_packages(name: str) -> set[str]:
    """The files Python runs to import ``name``: every package above it, then the module."""
    parts = name.split(".")
    return {f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i])))}


def imports(path: str) -> set[str]:
    """The ``ser`` files one file imports directly (anywhere in it, relative imports resolved)."""
    tree = ast.parse((ROOT / path).read_text(), path)
    package = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            names = [node.value]  # a registry entry
        else:
            continue
        for name in names:
            if name.split(".")[0] == "ser" and module_file(name):
                found |= with_packages(name)
    skipped = NOT_FOLLOWED.get(path, ())
    return {f for f in found - {path} if not f.startswith(skipped)}


def closure(start: str) -> set[str]:
    """Every ``ser`` file ``start`` imports, directly or through other ``ser`` files."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for found in imports(todo.pop()) - seen:
            seen.add(found)
            todo.append(found)
    return seen


def docstring_only(path: str) -> bool:
    body = ast.parse((ROOT / path).read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def deps(stage: str) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in STAGES[stage]["deps"]]


def covers(dep: str, module: str) -> bool:
    return module == dep or module.startswith(dep.rstrip("/") + "/")


def outputs() -> list[str]:
    return [o if isinstance(o, str) else next(iter(o)) for s in STAGES.values()
            for key in ("outs", "metrics") for o in s.get(key, [])]


@pytest.mark.parametrize("stage", STAGES)
def test_every_imported_module_is_a_dep(stage):
    script = f"stages/{stage}.py"
    assert f"python -m stages.{stage}" in STAGES[stage]["cmd"]
    listed = deps(stage)
    assert script in listed
    missing = sorted(m for m in closure(script) if m not in EXEMPT and not docstring_only(m)
                     and not any(covers(d, m) for d in listed))
    assert not missing, f"{stage}: add to its deps in dvc.yaml: {missing}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_code_dep_exists_and_is_imported(stage):
    used = closure(f"stages/{stage}.py")
    for dep in deps(stage):
        if dep.startswith("ser/"):
            assert (ROOT / dep).exists(), f"{stage}: dep {dep} does not exist"
            assert any(covers(dep, m) for m in used), f"{stage}: dep {dep} is not imported by stages/{stage}.py"
        elif not dep.startswith("stages/"):
            assert any(covers(out, dep) for out in outputs()), f"{stage}: dep {dep} is no stage's output"
        else:
            assert dep == f"stages/{stage}.py", f"{stage}: dep {dep} is another stage's script"


def test_the_graph_follows_imports_inside_functions_and_registries():
    assert "ser/evaluation/umap2d.py" in closure("stages/visualize.py")
    assert "ser/features/mfcc.py" in closure("stages/extract.py")  # only named in the features registry
    assert "ser/models/classifiers/xgb.py" in closure("stages/train.py")
    assert imports("ser/models/cv.py") >= {"ser/evaluation/metrics.py", "ser/__init__.py"}


def test_classifier_code_never_reruns_prepare_or_extract():
    for stage in ("prepare", "extract"):
        assert not [m for m in closure(f"stages/{stage}.py") if m.startswith("ser/models/classifiers/")], stage


def test_every_output_dvc_caches_is_in_its_folders_gitignore():
    """DVC adds a cached output to the .gitignore beside it on the first run; one missing from the committed
    file leaves the tree dirty after `dvc repro`."""
    missing = []
    for stage in STAGES.values():
        for out in [*stage.get("outs", []), *stage.get("plots", []), *stage.get("metrics", [])]:
            path, opts = (next(iter(out.items())) if isinstance(out, dict) else (out, {}))
            if (opts or {}).get("cache", True):
                ignore = ROOT / Path(path).parent / ".gitignore"
                entries = ignore.read_text().split() if ignore.is_file() else []
                if f"/{Path(path).name}" not in entries:
                    missing.append(path)
    assert not missing, f"add to the .gitignore beside each: {missing}"
