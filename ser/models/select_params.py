"""params.yaml ``select``: which encoder layers the classifier reads (see :mod:`ser.models.layer_choice`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ser.section import Section

if TYPE_CHECKING:
    from ser.config import Params as AllParams


class SelectParams(Section):
    """params.yaml ``select``: which encoder layers the classifier reads, chosen inside every training fold."""

    layers: Literal["auto", "concat"] | list[int] = Field(
        "auto", description="auto: every layer extracted is a candidate; a list: these hidden-state indices only; "
                            "concat: all layers joined into one vector (no choice)")
    top: int = Field(4, ge=1, description="the best this many candidate layers by inner UAR, probabilities averaged")
    inner_folds: int = Field(3, ge=2, description="speaker-grouped folds inside each training fold that score them")
    grid: dict[str, list] = Field(default_factory=dict, description="values of the classifier's settings tried with "
                                  "every layer, e.g. {C: [1, 10, 100]} (keys of its params group)")


def chooses(params: AllParams) -> bool:
    """Whether train will choose among encoder layers: pooled vectors of several layers of an ssl or whisper
    encoder (``features.layers: all`` or a list) and ``select.layers`` neither ``concat`` nor one layer."""
    f, wanted = params.features, params.select.layers
    several = f.layers == "all" or (isinstance(f.layers, list) and len(f.layers) > 1)
    return (f.extractor in ("ssl", "whisper") and f.pooling != "none" and several and wanted != "concat"
            and not (isinstance(wanted, list) and len(wanted) == 1))


def check(params: AllParams) -> None:
    """ValueError naming the key when ``select`` asks what the rest of params.yaml cannot give."""
    grid = params.select.grid
    if grid:
        group = type(getattr(params, params.classifier, None))
        fields = getattr(group, "model_fields", {})
        if params.classifier not in ("svm", "mlp", "xgboost") or set(grid) - set(fields):
            raise ValueError(f"select.grid: {sorted(grid)} must name settings of the classifier's group: for "
                             f"svm, mlp or xgboost, e.g. {{C: [1, 10, 100]}} with svm (classifier is "
                             f"{params.classifier}{', whose group has ' + ', '.join(fields) if fields else ''})")
        if not chooses(params) and not isinstance(params.select.layers, list):
            raise ValueError("select.grid is tried with each encoder layer train chooses among (ssl or whisper, "
                             "features.layers: all, pooled); for one feature vector search the settings with "
                             "tune.enabled: true instead")
    if params.tune.enabled and (chooses(params) or grid):
        raise ValueError("tune.enabled searches the classifier's settings on one set of features, and train is to "
                         "choose among encoder layers (features.layers: all, select.layers: auto): fix the layer "
                         "(select.layers: [3]) or join them (select.layers: concat), or set tune.enabled: false")
