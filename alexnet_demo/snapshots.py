"""Time-lapse snapshots: what the model makes of one probe image at a moment of training, as plain CPU tensors."""
from __future__ import annotations

import torch

from .models import forward_with_maps

TOP_CHANNELS = 8  # feature maps kept per conv layer: the most active ones


def take_snapshot(model: torch.nn.Module, x: torch.Tensor, classes, k: int = TOP_CHANNELS) -> dict:
    """`model`'s view of the prepared probe `x` (1, C, H, W): class probabilities (highest first), each conv
    layer's `k` most active maps after ReLU (k, H, W) with their channel numbers, and conv1's weights.

    In eval mode, so dropout is off and BatchNorm neither uses nor updates batch statistics: the probe leaves no
    trace in the training. The model goes back to the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits, maps = forward_with_maps(model, x)
            probabilities = logits.float().softmax(1)[0].tolist()
            channels = {name: m[0].float().mean((1, 2)).topk(min(k, m.shape[1])).indices for name, m in maps.items()}
            top = {name: maps[name][0, channels[name]] for name in maps}
    finally:
        model.train(was_training)
    # Copies made outside inference mode: ordinary tensors that pickle and take in-place ops like any other.
    plain = lambda t: t.detach().to("cpu", torch.float32).clone(memory_format=torch.contiguous_format)  # noqa: E731
    return {"probabilities": dict(sorted(zip(classes, probabilities), key=lambda kv: -kv[1])),
            "maps": {name: plain(m) for name, m in top.items()},
            "channels": {name: c.tolist() for name, c in channels.items()},
            "filters": plain(model.features.conv1.weight)}
