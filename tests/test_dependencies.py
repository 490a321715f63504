"""pyproject.toml declares what the code imports: every run-time import is a dependency, every
dependency is used, and the dev group holds only tools the code never imports."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NOT_IMPORTED = {"dvc": "runs the pipeline (dvc repro) and is never imported",
                "python-multipart": "parses file uploads for FastAPI (stages.serve); FastAPI imports it",
                "onnx": "torch.onnx.export and onnxruntime.quantization need it (stages.export); they import it"}


def name(requirement: str) -> str:
    """The canonical distribution name of a requirement such as ``scikit-learn>=1.6``."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement)[0]).lower()


def imported(*folders: str) -> set[str]:
    """Distributions whose top-level packages these folders import (anywhere in a file)."""
    modules = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    modules -= {*sys.stdlib_module_names, "ser", "stages"}
    owners = packages_distributions()
    unknown = sorted(m for m in modules if m not in owners)
    assert not unknown, f"imported but not installed: {unknown}"
    return {name(d) for m in modules for d in owners[m]}


def test_every_run_time_import_is_a_declared_dependency():
    undeclared = imported("ser", "stages") - {name(r) for r in PROJECT["dependencies"]}
    assert not undeclared, f"imported but not declared in pyproject.toml: {sorted(undeclared)}"


def test_every_dependency_is_imported_or_explained():
    unused = {name(r) for r in PROJECT["dependencies"]} - imported("ser", "stages") - set(NOT_IMPORTED)
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_development_tools_are_not_imported_at_run_time():
    dev = {name(r) for r in PROJECT["optional-dependencies"]["dev"]}
    assert not dev & imported("ser", "stages")
    assert "pytest" in dev and not dev & {name(r) for r in PROJECT["dependencies"]}


def test_requirements_install_the_project_with_its_dev_group():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-e .[dev]"]
