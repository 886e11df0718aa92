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

# Inputs one batched forward takes at most: visitors whose strokes arrive together share one forward (8 MNIST
# drawings in bf16 cost ~41 ms at once against ~17 ms alone on this project's 2-core Xeon); a cap keeps one long
# queue from becoming one slow batch.
MAX_BATCH = 16
PROBE_IMAGES = 32  # fixed real inputs on which bf16 must answer as fp32 does (precision.choose_format)


@dataclass
class _Request:
    """One caller's input waiting for a batched forward, and what comes back to it."""
    x: torch.Tensor  # (1, C, S, S), normalized
    maps: bool
    done: threading.Event = field(default_factory=threading.Event)
    logits: torch.Tensor | None = None  # (classes,) float32
    feature_maps: dict[str, torch.Tensor] = field(default_factory=dict)
    error: BaseException | None = None


class Classifier:
    """A loaded checkpoint kept warm on the CPU: `predict`, `feature_maps` and `run` (both in one forward).

    Concurrent `run` calls are answered by batched forwards: each caller queues its input, and whichever caller
    gets the model next runs everything queued (up to MAX_BATCH) at once, so a lone caller never waits for a
    batch to fill. `self.model` is the fp32 network (explanations take gradients through it); `run` answers with
    `self.fast`, the same network in the number format `use_best_format` measured fastest here (fp32 until then).
    """

    def __init__(self, model: torch.nn.Module, meta: dict, source: str = ""):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.meta = meta
        self.preset = meta["preset"]
        self.input_size = int(meta["input_size"])
        self.classes = tuple(meta["classes"])
        self.source = source
        self.fast, self.format = self.model, None  # format: precision.FormatChoice once measured
        self._start_queue()

    def _start_queue(self):
        self._waiting: list[_Request] = []
        self._waiting_lock = threading.Lock()  # guards _waiting
        self._forward_lock = threading.Lock()  # one forward at a time: it uses every core already

    def __getstate__(self):  # pickled into a ZeroGPU worker, deep-copied by gradio: locks and queue stay behind
        state = self.__dict__.copy()
        for name in ("_waiting", "_waiting_lock", "_forward_lock"):
            state.pop(name)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_queue()

    def use_best_format(self, probe: torch.Tensor | None = None):
        """Measure fp32 against bf16 on `probe` (normalized real inputs; None: the first PROBE_IMAGES test images
        of the channel index shipped beside the checkpoint) and answer in the winner from now on. Returns the
        precision.FormatChoice. `ALEXNET_DEMO_FORMAT=fp32` keeps fp32 without measuring."""
        from .precision import FormatChoice, choose_format
        if os.environ.get("ALEXNET_DEMO_FORMAT", "auto") == "fp32":
            choice, fast = FormatChoice(torch.float32, "fp32: set by ALEXNET_DEMO_FORMAT=fp32"), self.model
        elif probe is None and (probe := self.probe_images()) is None:
            choice, fast = FormatChoice(torch.float32, "fp32: no probe images to compare bf16 on"), self.model
        else:
            choice, fast = choose_format(self.model, probe)
        with self._forward_lock:  # never swap the model under a running batch
            self.fast, self.format = fast, choice
        return choice

    def probe_images(self) -> torch.Tensor | None:
        """The first PROBE_IMAGES real test images of this checkpoint's channel index, normalized; None if none."""
        from .channels import ChannelIndexNotFound, index_path_for, load_index
        try:
            images = load_index(index_path_for(self.source)).images[:PROBE_IMAGES] if self.source else None
        except (ChannelIndexNotFound, OSError):
            return None
        if images is None or images.shape[1] != self.model.features[0].in_channels:
            return None
        return prepare_batch(images, self.preset, self.input_size, channels_last=True)

    def preprocess(self, image) -> np.ndarray | None:
        """What the network sees, at the dataset's native size (uint8); None for an empty canvas."""
        return digit_to_mnist(image) if self.preset == "mnist" else photo_to_cifar(image)

    def to_batch(self, seen: np.ndarray) -> torch.Tensor:
        """What the network sees (uint8 (h, w) or (h, w, 3)) as a normalized (1, C, input_size, input_size)."""
        x = torch.from_numpy(seen)
        x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
        return prepare_batch(x, self.preset, self.input_size, channels_last=True)

    def forward(self, x: torch.Tensor, maps: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits (classes,) float32, conv1..conv5 -> (C, H, W) float32 if `maps`) for one normalized input
        (1, C, S, S), in a batched forward with whatever other callers have queued meanwhile."""
        request = _Request(x, maps)
        with self._waiting_lock:
            self._waiting.append(request)
        while not request.done.is_set():
            with self._forward_lock:
                if request.done.is_set():
                    break  # another caller's batch answered it while this one waited for the model
                with self._waiting_lock:
                    batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                self._forward_batch(batch)
        if request.error is not None:
            raise request.error
        return request.logits, request.feature_maps

    @torch.inference_mode()
    def _forward_batch(self, batch: list[_Request]) -> None:
        try:
            dtype = next(self.fast.parameters()).dtype
            logits, maps = forward_with_maps(self.fast, torch.cat([r.x for r in batch]).to(dtype))
            logits = logits.float()
            for i, r in enumerate(batch):
                r.logits = logits[i]
                if r.maps:  # copies (one each: float32, plain layout): one input's maps must not keep the batch's alive
                    r.feature_maps = {name: m[i].to(torch.float32, memory_format=torch.contiguous_format, copy=True)
                                      for name, m in maps.items()}
        except BaseException as e:  # every waiting caller gets the error, not a hang
            for r in batch:
                r.error = e
        finally:
            for r in batch:
                r.done.set()

    def run(self, image, maps: bool = True) -> Result:
        seen = self.preprocess(image)
        if seen is None:
            return Result({}, None, {})
        logits, feature_maps = self.forward(self.to_batch(seen), maps)
        p = logits.softmax(0)
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

