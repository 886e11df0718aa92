"""Channel ablation: a layer's channels switched off by masks in the forward walk (the weights are never edited),
and which channels, each alone, move the top class most."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerGradientXActivation

from .explain import HOOKS, cam_module, check_layer, hookable, seen_image
from .models import forward_with_maps


@dataclass
class Ablation:
    layer: str
    switched_off: list[int]  # the channels silenced: the k most active plus those named
    classes: tuple[str, ...]
    original: np.ndarray  # (classes,) probabilities as the model answers
    ablated: np.ndarray  # (classes,) with `switched_off` silenced
    top: int  # the original top class, whose probability `effects` measure
    effects: list[tuple[int, float]]  # (channel, change in P(top) with only it silenced), largest |change| first


NEGLIGIBLE = 0.001  # a change in P(top class) below 0.1 percentage points: no single channel matters


def largest(result: Ablation) -> float:
    """The largest change in P(top class) that switching one channel off makes (probability, >= 0)."""
    return max((abs(change) for _, change in result.effects), default=0.0)


def ablation_candidates(preset: str, show: int = 16) -> int:
    """How many channels an ablation measures one by one: each re-runs the layers after the ablated one, which at
    224 px (mnist) keeps it under 300 ms only with as many as are shown; at 50 px (cifar10) 24 are cheap."""
    return show if preset == "mnist" else 24


def ablate(classifier, image, layer: str, k: int = 0, channels=(), candidates: int | None = None, show: int = 16
           ) -> Ablation:
    """Switch off the `k` most active channels of `layer` (mean activation on this input) and/or `channels`,
    by masks in the forward walk (the weights are never edited). Also each channel's own effect: a first-order
    estimate (activation x gradient, Captum) picks `candidates` channels, one batched forward from `layer` on
    measures each alone, and the `show` with the largest change in P(top class) are returned. Cost: one forward
    and backward, then `candidates` + 1 passes through the layers after `layer` (mnist conv1: ~9 ms each on 2
    cores, conv5: ~1 ms)."""
    seen, layer = seen_image(classifier, image), check_layer(layer)
    n = classifier.model.features.get_submodule(layer).out_channels
    if not 0 <= k <= n:
        raise ValueError(f"k must be 0-{n} ({layer} has {n} channels), not {k}")
    bad = [c for c in channels if not isinstance(c, (int, np.integer)) or not 0 <= c < n]
    if bad:
        raise ValueError(f"channel(s) {bad} do not exist: {layer} has channels 0-{n - 1}")
    original, fmap, score = taylor(classifier, classifier.to_batch(seen), layer)
    top = int(original.argmax())
    strength = fmap[0].mean(dim=(1, 2))  # (C,)
    off = sorted(set(strength.argsort(descending=True)[:k].tolist()) | {int(c) for c in channels})
    if candidates is None:
        candidates = ablation_candidates(classifier.preset, show)
    chosen = score.argsort(descending=True)[:min(candidates, n)]  # silent channels (estimate 0) come last
    masks = torch.ones(1 + len(chosen), n)  # row 0: the requested ablation; row i: only chosen[i - 1] off
    masks[0, off] = 0
    masks[torch.arange(1, 1 + len(chosen)), chosen] = 0
    with torch.inference_mode():
        batch = fmap.expand(len(masks), -1, -1, -1)
        out, _ = forward_with_maps(classifier.model, batch, masks={layer: masks}, start=layer)
    p = out.float().softmax(1)
    change = (p[1:, top] - original[top]).tolist()
    effects = sorted(zip(chosen.tolist(), change), key=lambda e: -abs(e[1]))[:show]
    return Ablation(layer, off, tuple(classifier.classes), original.numpy(), p[0].numpy(), top, effects)


def taylor(classifier, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and backward: (probabilities (classes,), `layer`'s map (1, C, H, W), each channel's first-order
    estimate of how much silencing it moves P(top class): |sum of activation x gradient| (Molchanov et al. 2017),
    from Captum's LayerGradientXActivation)."""
    model = hookable(classifier.model)
    kept = {}

    def top_probability(batch):  # the walk, so the map comes out of the same forward
        logits, maps = forward_with_maps(model, batch)
        kept.update(p=logits.detach()[0].float().softmax(0), fmap=maps[layer].detach())
        p = logits.softmax(1)
        return p.gather(1, p.argmax(1, keepdim=True))

    with HOOKS, torch.enable_grad():
        gxa = LayerGradientXActivation(top_probability, cam_module(model, layer))
        score = gxa.attribute(x, target=0)[0].detach().sum(dim=(1, 2)).abs()  # (C,)
    return kept["p"], kept["fmap"], score
