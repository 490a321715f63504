"""The classifier of a trained model as ONNX graphs, one per layer it reads (a plain model: one), each
standardised vector block -> class probabilities, written by the ecosystem's converters:

- ``svm``: skl2onnx, on the scikit-learn model the fitted :class:`ser.models.classifiers.svm.RbfSVC` is: its
  libsvm solution over a precomputed RBF kernel is the same solution as an ``SVC(kernel='rbf')`` whose
  support vectors are the kept training rows, and its per-class sigmoids are those of a
  ``CalibratedClassifierCV(method='sigmoid', ensemble=False)`` around that SVC;
- ``xgboost``: onnxmltools' XGBoost converter inside skl2onnx's pipeline conversion;
- ``mlp``: torch.onnx, the network in eval mode after the scaler, with a softmax.

The scaler is converted with skl2onnx's ``div`` option: subtract, then divide, in float32, as scikit-learn
computes it on float32 input. Its default (multiply by the reciprocal) rounds differently in the last bit,
which trees notice: a training clip's feature lies exactly on a split threshold, and 26 of 96 training clips
of a small XGBoost model took the other branch (probabilities 0.12 apart); with ``div``, none did.

Each member's output columns are class indices of the model's labels (``columns``), and the columns of
the whole vector it reads (``start``, ``stop``); the runtime averages the members' probabilities, as
:class:`ser.models.layer_choice.LayerChoice` does.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

EXPORTABLE = ("svm", "mlp", "xgboost")
OPSETS = {"": 17, "ai.onnx.ml": 3}


def export(model: Any, classifier: str, folder: Path, dim: int) -> list[dict]:
    """Write ``model``'s head graphs into ``folder``; the manifest entry of each (file, output, columns, start,
    stop). ``dim``: the width of the vector the model reads."""
    from ser.models.layer_choice import LayerChoice

    if classifier not in EXPORTABLE:
        raise ValueError(f"classifier {classifier!r} does not export to ONNX (exported: {', '.join(EXPORTABLE)})")
    if isinstance(model, LayerChoice):
        width, codes = model.width_, np.asarray(model.classes_, int)
        starts = [model.layers.index(layer) * width for layer, _ in model.members_]  # as LayerChoice reads blocks
        parts = [(m, codes, start, start + width) for start, (_, m) in zip(starts, model.members_)]
    else:
        parts = [(model, np.arange(int(max(model.classes_)) + 1), 0, dim)]
    members = []
    for k, (pipeline, codes, start, stop) in enumerate(parts):
        name = f"head_{k}.onnx"
        (folder / name).write_bytes(_CONVERT[classifier](pipeline, stop - start))
        columns = codes[np.asarray(pipeline.classes_, int)]
        members.append({"file": name, "output": "probabilities", "columns": columns.tolist(),
                        "start": start, "stop": stop})
    return members


def _svm(pipeline: Any, width: int) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier
    from sklearn.pipeline import Pipeline

    scaler, rbf = pipeline[0], pipeline[-1]
    if not rbf.precomputed_:
        svc = rbf.svc_
    else:
        from sklearn.svm import SVC

        fitted, svc = rbf.svc_, SVC(kernel="rbf", C=rbf.C, gamma=rbf.gamma_)
        for name in ("dual_coef_", "_dual_coef_", "intercept_", "_intercept_", "_n_support", "classes_",
                     "fit_status_", "class_weight_", "n_iter_", "_probA", "_probB"):
            setattr(svc, name, getattr(fitted, name))
        svc.support_vectors_ = rbf.support_vectors_.astype(np.float64)
        svc.support_ = np.arange(len(svc.support_vectors_), dtype=np.int32)
        svc._sparse, svc._gamma = False, rbf.gamma_
        svc.shape_fit_, svc.n_features_in_ = (len(svc.support_), width), width
    calibrated = CalibratedClassifierCV(svc, method="sigmoid", ensemble=False)
    calibrated.classes_, calibrated.n_features_in_ = np.arange(len(rbf.classes_)), width
    calibrated.calibrated_classifiers_ = [_CalibratedClassifier(svc, rbf.calibrators_, method="sigmoid",
                                                                classes=calibrated.classes_)]
    same = Pipeline([("scaler", scaler), ("svm", calibrated)])
    with warnings.catch_warnings():  # skl2onnx reads SVC.probA_, deprecated with SVC(probability=True)
        warnings.filterwarnings("ignore", message=".*probA_|.*probB_", category=FutureWarning)
        return to_onnx(same, np.zeros((1, width), np.float32), target_opset=OPSETS,
                       options={id(calibrated): {"zipmap": False}, id(scaler): {"div": "div"}}).SerializeToString()


def _xgboost(pipeline: Any, width: int) -> bytes:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import to_onnx, update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    scaler, trees = pipeline[0], pipeline[-1].booster_
    same = Pipeline([("scaler", scaler), ("xgboost", trees)])
    return to_onnx(same, np.zeros((1, width), np.float32), target_opset=OPSETS,
                   options={id(trees): {"zipmap": False}, id(scaler): {"div": "div"}}).SerializeToString()


def _mlp(pipeline: Any, width: int) -> bytes:
    import copy
    import io

    import torch

    scaler, mlp = pipeline[0], pipeline[-1]

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(scaler.mean_, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(scaler.scale_, dtype=torch.float32))
            self.net = copy.deepcopy(mlp.module_).cpu().eval()  # the fitted one stays on its device

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net((x - self.mean) / self.scale), 1)

    from ser.export.encoder_graph import to_onnx

    buffer = io.BytesIO()
    to_onnx(Head(), (torch.zeros(2, width),), buffer, ("X",), "probabilities",
            {"X": {0: "batch"}, "probabilities": {0: "batch"}})
    return buffer.getvalue()


_CONVERT = {"svm": _svm, "xgboost": _xgboost, "mlp": _mlp}
