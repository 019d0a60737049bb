"""Layer-by-layer pooled representations of one model on the probe set: the input to CKA.

Extracted once per STL model (T forward passes over the probe set for T tasks, not T^2);
``harness.analyses.cka.layerwise_cka`` then compares every pair of models from the stored arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from harness.analyses.probe import ProbeSet
from harness.core.config import POOLING
from harness.errors import AnalysisError


@contextlib.contextmanager
def full_precision(device: Any) -> Iterator[None]:
    """Autocast off: analyses run in the parameters' dtype (float32) also under bf16 training.

    The modules are called directly (not through accelerate's autocast-patched ``forward``),
    so this also holds when the caller is itself inside an autocast region.
    """
    import torch

    with torch.autocast(device_type=device.type, enabled=False):
        yield


def pool(hidden: Any, attention_mask: Any, pooling: str) -> Any:
    """[batch, hidden] from [batch, seq, hidden]: mean over non-padding tokens, or token 0 ("cls").

    The same pooling as ``MultiTaskModel.encode``, computed in float64.
    """
    if pooling == "cls":
        return hidden[:, 0].double()
    mask = attention_mask.unsqueeze(-1).double()  # [batch, seq, 1]
    return (hidden.double() * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def layer_features(model: Any, probe: ProbeSet, acc: Any, pooling: str, batch_size: int = 64) -> np.ndarray:
    """Pooled hidden states [L + 1, rows, hidden] (float64) of the embeddings and every layer.

    Index 0 is the embedding output, index l the output of transformer layer l (the encoder's
    ``hidden_states`` with ``output_hidden_states=True``). Rows are the probe rows in probe order
    (``probe.row_ids``); pooling is "mean" over non-padding tokens or "cls" (token 0). The
    encoder of ``model`` (a ``MultiTaskModel``, DDP-wrapped or not) runs in eval mode, without
    gradients and in float32 (no autocast), ``batch_size`` rows at a time; its train/eval mode
    is restored afterwards. Every process computes all rows, so the result is the same on every
    process and equals the one-process result; nothing is communicated.
    """
    import torch

    if pooling not in POOLING:
        raise AnalysisError(f"pooling must be one of {', '.join(POOLING)}; got {pooling!r}")
    encoder = acc.unwrap_model(model).encoder
    device = next(encoder.parameters()).device  # acc.device once prepared
    was_training = encoder.training
    encoder.eval()
    chunks: list[torch.Tensor] = []  # each [L + 1, batch, hidden]
    try:
        with torch.no_grad(), full_precision(device):
            for stream in probe.streams:
                for start in range(0, stream.rows, batch_size):
                    part = stream.part(start, start + batch_size)
                    inputs = {k: v.to(device) for k, v in part.inputs.items()}
                    out = encoder(**inputs, output_hidden_states=True)
                    mask = inputs["attention_mask"]
                    chunks.append(torch.stack([pool(h, mask, pooling) for h in out.hidden_states]).cpu())
    finally:
        encoder.train(was_training)
    if not chunks:
        raise AnalysisError("the probe set has no rows")
    return torch.cat(chunks, dim=1).numpy()
