"""Pure analyses behind the predictors: functions on arrays and tensors, no training loop.

- ``cka``: linear CKA (biased and debiased), HSIC estimators, layer-by-layer CKA matrices.
- ``gradients``: gradient cosines between tasks on shared parameters, per layer and overall.

Every function states its formula, source paper, shapes and direction (similarity or
dependence). Undefined values raise ``AnalysisError`` (a ``ValueError``); nothing returns NaN.
"""

from harness.analyses.cka import (
    LayerwiseCKA,
    hsic_biased,
    hsic_unbiased,
    layerwise_cka,
    linear_cka,
    linear_cka_debiased,
    standardize_features,
)
from harness.analyses.gradients import (
    GradientAlignment,
    PairGradientAlignment,
    gradient_alignment,
    gradient_cosine,
    gradient_cosine_matrix,
    transformer_layer_of,
)
from harness.errors import AnalysisError

__all__ = [
    "AnalysisError",
    "GradientAlignment",
    "PairGradientAlignment",
    "gradient_alignment",
    "gradient_cosine",
    "gradient_cosine_matrix",
    "transformer_layer_of",
    "LayerwiseCKA",
    "hsic_biased",
    "hsic_unbiased",
    "layerwise_cka",
    "linear_cka",
    "linear_cka_debiased",
    "standardize_features",
]
