"""The documentation site builds in strict mode, and what docs/contributing.md promises holds: the places it
names exist, and every registered corpus, extractor and classifier, and every library module, is documented."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reproduce.workspace import ROOT
from ser.corpora.registry import REGISTRY as CORPORA
from ser.features import REGISTRY as EXTRACTORS
from ser.models.classifiers import REGISTRY as CLASSIFIERS

DOCS = ROOT / "docs"


def build(root: Path, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(dest)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.mark.timeout(600)
def test_the_site_builds_in_strict_mode_and_a_broken_link_fails_it(tmp_path):
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site/reference/corpora/index.html").read_text().count("ser.corpora.emovo") > 1
    copy = tmp_path / "copy"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    (copy / "ser").symlink_to(ROOT / "ser")
    (copy / "docs/predict.md").write_text((DOCS / "predict.md").read_text() + "\n[gone](no-such-page.md)\n")
    broken = build(copy, tmp_path / "broken")
    assert broken.returncode != 0 and "no-such-page.md" in broken.stdout + broken.stderr


def nav_pages() -> set[str]:
    def walk(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in walk(item)]
        return [p for value in node.values() for p in walk(value)]

    return set(walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))


def test_every_page_is_in_the_nav_and_every_corpus_has_a_page_and_a_readme_row():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == nav_pages()
    readme = (ROOT / "README.md").read_text()
    for name in CORPORA:
        assert f"corpora/{name}.md" in pages, f"docs/corpora/{name}.md is missing"
        assert f"| `{name}`" in readme, f"the README's datasets table has no row for {name}"


def test_every_extractor_and_classifier_is_documented_and_has_its_places():
    features, classifiers = (DOCS / "features.md").read_text(), (DOCS / "classifiers.md").read_text()
    train = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["params"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in EXTRACTORS:
        assert f"`{name}`" in features, f"docs/features.md does not describe the extractor {name}"
    for name in CLASSIFIERS:
        assert f"`{name}`" in classifiers, f"docs/classifiers.md does not describe the classifier {name}"
        assert name in params, f"{name}: its group in params.yaml"
        # finetune's params reach train through data/route.json (docs/finetune.md), so no frozen run re-runs on them
        assert (name in train) != (name == "finetune"), f"{name}: its group in the train stage's params (dvc.yaml)"


def test_the_places_contributing_names_exist():
    text = (DOCS / "contributing.md").read_text()
    named = set(re.findall(r"`((?:ser|tests|reproduce)/[\w/.]+\.(?:py|yaml))`", text))
    assert len(named) >= 10, named
    assert not [n for n in named if not (ROOT / n).is_file()], "docs/contributing.md names files that do not exist"
    assert "class Extractor(Protocol)" in (ROOT / "ser/features/__init__.py").read_text()
    assert "def test_emovo(" in (ROOT / "tests/test_datasets.py").read_text()


def test_every_library_module_is_in_the_api_reference():
    listed = set(re.findall(r"^::: ([\w.]+)$", "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md")),
                            re.M))
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in (ROOT / "ser").rglob("*.py") if not p.name.startswith("_") or p.name == "__init__.py"}
    assert not sorted(modules - listed), f"add these to a page of docs/reference/: {sorted(modules - listed)}"
    assert not sorted(listed - modules), f"docs/reference/ lists modules that do not exist: {sorted(listed - modules)}"
