"""Inference: a checkpoint kept warm on the CPU; an image -> what the network sees -> probabilities and feature
maps, in one forward walk."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_checkpoint, resolve_checkpoint
from .data import prepare_batch
from .models import forward_with_maps
from .preprocessing import digit_to_mnist, photo_to_cifar


@dataclass
class Result:
    probabilities: dict[str, float]  # class -> probability, highest first; empty when nothing was drawn
    seen: np.ndarray | None  # the native-size image the network received, uint8 (h, w) or (h, w, 3)
    feature_maps: dict[str, torch.Tensor] = field(default_factory=dict)  # conv1..conv5 -> (C, H, W), after ReLU


# ---- the classifier ------------------------------------------------------------------------------------------


class Classifier:
    """A loaded checkpoint kept warm on the CPU: `predict`, `feature_maps` and `run` (both in one forward)."""

    def __init__(self, model: torch.nn.Module, meta: dict, source: str = ""):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.meta = meta
        self.preset = meta["preset"]
        self.input_size = int(meta["input_size"])
        self.classes = tuple(meta["classes"])
        self.source = source

    def preprocess(self, image) -> np.ndarray | None:
        """What the network sees, at the dataset's native size (uint8); None for an empty canvas."""
        return digit_to_mnist(image) if self.preset == "mnist" else photo_to_cifar(image)

    def to_batch(self, seen: np.ndarray) -> torch.Tensor:
        """What the network sees (uint8 (h, w) or (h, w, 3)) as a normalized (1, C, input_size, input_size)."""
        x = torch.from_numpy(seen)
        x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
        return prepare_batch(x, self.preset, self.input_size, channels_last=True)

    @torch.inference_mode()
    def run(self, image, maps: bool = True) -> Result:
        seen = self.preprocess(image)
        if seen is None:
            return Result({}, None, {})
        x = self.to_batch(seen)
        if maps:
            logits, feature_maps = forward_with_maps(self.model, x)
            feature_maps = {name: fmap[0].contiguous() for name, fmap in feature_maps.items()}
        else:
            logits, feature_maps = self.model(x), {}
        p = logits[0].float().softmax(0)
        order = p.argsort(descending=True).tolist()
        return Result({self.classes[i]: float(p[i]) for i in order}, seen, feature_maps)

    def predict(self, image) -> dict[str, float]:
        """Class -> probability, highest first. An empty canvas gives an empty dict ("nothing drawn")."""
        return self.run(image, maps=False).probabilities

    def feature_maps(self, image) -> dict[str, torch.Tensor]:
        """conv1..conv5 -> (C, H, W) activations after ReLU; an empty dict when nothing is drawn."""
        return self.run(image).feature_maps


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Classifier:
    model, meta = load_checkpoint(path)
    return Classifier(model, meta, source=path)


def load_classifier(name_or_path: str | os.PathLike = "mnist") -> Classifier:
    """A warm classifier for a shipped preset ("mnist", "cifar10": local checkpoints/, else the Hub) or a file.
    Loaded once per file and kept in memory."""
    path = resolve_checkpoint(name_or_path)
    resolved = str(Path(path).resolve())
    mtime = os.path.getmtime(resolved) if os.path.exists(resolved) else 0.0
    with _LOAD_LOCK:  # the app's warm-up thread and a first request must not load the same file twice
        return _load_cached(resolved, mtime)

