"""UMAP: seeded determinism, the PCA step, and the visualize stage with and without a sex column."""

import json
from pathlib import Path
from runpy import run_path

import numpy as np
import pandas as pd
import pytest
from embedding_fixtures import make_embeddings
from png_checks import assert_picture

from ser.artifacts import write_npz
from ser.evaluation.umap2d import colourings, embed_2d, reduce

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    X, meta = make_embeddings(clips=150, dim=64, speakers=6, classes=3, seed=1)
    return X, meta


def test_umap_is_deterministic_for_a_seed(data):
    X, _ = data
    a, b = embed_2d(X, seed=3), embed_2d(X, seed=3)
    assert a.shape == (len(X), 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, embed_2d(X, seed=4))


def test_umap_keeps_class_structure(data):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    X, meta = data
    xy = embed_2d(X, seed=0, pca_dims=10)
    accuracy = cross_val_score(KNeighborsClassifier(5), xy, meta["label"], cv=3).mean()
    assert accuracy > 0.6  # 3 classes: chance is about 1/3


def test_reduce_standardises_then_pca():
    X = np.random.default_rng(0).normal(5, 3, (80, 20)).astype(np.float32)
    Z = reduce(X, pca_dims=5)
    assert Z.shape == (80, 5)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)
    assert np.all(np.diff(Z.var(0)) <= 1e-6)  # principal components, largest variance first
    full = reduce(X, pca_dims=0)
    assert full.shape == (80, 20)
    np.testing.assert_allclose(full.std(0), 1, atol=1e-3)
    assert reduce(X, pca_dims=50).shape == (80, 20)  # fewer dims than asked: standardised only


def test_colourings():
    table = pd.DataFrame({"label": ["a", "b"], "speaker": ["1", "2"]})
    assert list(colourings(table)) == ["emotion", "speaker"]
    assert list(colourings(table.assign(sex=["female", "female"]))) == ["emotion", "speaker"]  # one value: no panel
    panels = colourings(table.assign(sex=["male", None]))
    assert list(panels) == ["emotion", "speaker", "sex"] and list(panels["sex"]) == ["male", "unknown"]


def run_visualize(root, monkeypatch, sex: bool):
    X, meta = make_embeddings(clips=120, dim=48, speakers=6, classes=4, copies=1, seed=2)
    monkeypatch.chdir(root)
    (root / "params.yaml").write_text("dataset: synthetic\nfeatures: {extractor: mfcc}\n"
                                      "umap: {n_neighbors: 10, pca_dims: 20}\n")
    write_npz(root / "embeddings/features.npz", X=X, aug=meta["aug"].to_numpy(),
              **{c: meta[c].to_numpy(str) for c in ("clip_id", "label", "speaker")})
    (root / "embeddings/features.json").write_text(
        json.dumps({"feature_params": {"features": {"extractor": "mfcc"}}, "failed": 0}))
    originals = meta[meta["aug"] == 0]
    manifest = pd.DataFrame({"clip_id": originals["clip_id"], "path": "x.wav", "label": originals["label"],
                             "speaker": originals["speaker"]})
    if sex:
        manifest["sex"] = np.where(originals["speaker"].str[-1].astype(int) % 2, "male", "female")
    (root / "data").mkdir()
    manifest.to_csv(root / "data/manifest.csv", index=False)
    run_path(str(ROOT / "stages/visualize.py"))["main"]()  # works whatever sys.path holds
    return pd.read_csv(root / "results/umap.csv", dtype=str), assert_picture(root / "results/umap.png")


def test_visualize_stage_with_and_without_sex(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, plain_png = run_visualize(tmp_path / "a", monkeypatch, sex=False)
    with_sex, sex_png = run_visualize(tmp_path / "b", monkeypatch, sex=True)

    assert len(plain) == 120  # original clips only, not the augmented copies
    assert list(plain.columns) == ["clip_id", "label", "speaker", "x", "y"]
    assert list(with_sex.columns) == ["clip_id", "label", "speaker", "sex", "x", "y"]
    assert set(with_sex["sex"]) == {"male", "female"}
    np.testing.assert_array_equal(plain[["x", "y"]], with_sex[["x", "y"]])  # same data, same seed
    assert sex_png.shape[1] > 1.3 * plain_png.shape[1]  # a third panel
