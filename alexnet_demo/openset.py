"""Whether a photo shows one of the ten CIFAR-10 classes at all: the Mahalanobis distance of its pool5 features
(averaged over VIEWS framings of the photo) to the nearest class mean, against a threshold measured on
re-photographed CIFAR-10 training images (bench/openset.py, README: Photos of other things). The class means and
shared covariance are computed once, from training images re-photographed (photos.rephotograph) as the threshold's
are, and shipped beside the checkpoint (checkpoints/cifar10.openset.safetensors, 273 kB)."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .checkpoints import sha256_of
from .data import prepare_batch
from .preprocessing import photo_to_cifar, to_float_array

# Measured by `python bench/bench.py openset checkpoints/cifar10.safetensors --write-stats` (AMD EPYC, 2 cores) on
# 1,000 re-photographed CIFAR-10 test images and 700 photos of other things (photos.py): AUROC 0.645 (top probability
# 0.591, energy 0.620); at the shipped threshold (5% of re-photographed training images called "none") 3.8% of the
# in-class photos are called "none" and 86.3% of the others still get a class. The file's metadata keeps every figure.
VIEWS = 6  # the centre square, the whole photo padded square, the centre 75%; each also mirrored
RIDGE = 1e-3  # added to the covariance's diagonal (times its mean variance) before it is inverted


def stats_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's open-set statistics live: `<name>.openset.safetensors` beside it."""
    return Path(str(checkpoint).removesuffix(".safetensors") + ".openset.safetensors")


def views(image) -> np.ndarray:
    """uint8 (VIEWS, 32, 32, 3): the photo framed as the Photo tab frames it (the centre square), the whole photo
    padded square with its mean colour, and the centre 75% of the square; each also mirrored."""
    color, alpha = to_float_array(image)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    if alpha is not None:  # as photo_to_cifar: transparent pixels over white
        color = color * alpha[:, :, None] + (1 - alpha[:, :, None])
    h, w = color.shape[:2]
    side = max(h, w)
    padded = np.empty((side, side, 3), np.float32)
    padded[:] = color.reshape(-1, 3).mean(axis=0)
    padded[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = color
    small = min(h, w)
    square = color[(h - small) // 2:(h - small) // 2 + small, (w - small) // 2:(w - small) // 2 + small]
    inner = max(1, round(small * 0.75))
    edge = (small - inner) // 2
    centre = square[edge:edge + inner, edge:edge + inner]
    framed = [photo_to_cifar(square), photo_to_cifar(padded), photo_to_cifar(centre)]
    return np.stack([v for f in framed for v in (f, f[:, ::-1])])


@torch.inference_mode()
def features_and_logits(model, views_uint8: torch.Tensor, input_size: int = 50, batch: int = 600
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(pool5 features (N, 256), logits (N, 10)), float32, for uint8 (N, 3, 32, 32) images, in batches."""
    model.eval()
    feats, logits = [], []
    dtype = next(model.parameters()).dtype
    for start in range(0, len(views_uint8), batch):
        x = prepare_batch(views_uint8[start:start + batch], "cifar10", input_size).to(dtype)
        f = torch.flatten(model.features(x), 1)
        feats.append(f.float())
        logits.append(model.classifier(f).float())
    return torch.cat(feats), torch.cat(logits)


def fit(features: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(class means (classes, D), precision (D, D): the inverse of the shared within-class covariance)."""
    features = features.double()
    means = torch.stack([features[labels == c].mean(0) for c in range(classes)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += torch.eye(len(covariance), dtype=covariance.dtype) * RIDGE * covariance.diagonal().mean()
    return means.float(), torch.linalg.inv(covariance).float()


def mahalanobis(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(N,) squared Mahalanobis distance of each feature row (N, D) to its nearest class mean."""
    diff = features[:, None, :] - means[None]  # (N, classes, D)
    return torch.einsum("ncd,de,nce->nc", diff, precision, diff).min(dim=1).values


@dataclass
class OpenSet:
    """A checkpoint's open-set rule: its class means and precision, and the distance above which a photo is
    "none of the ten" (with the figures that chose it)."""
    means: torch.Tensor
    precision: torch.Tensor
    threshold: float
    meta: dict

    def score(self, model, image) -> tuple[float, torch.Tensor]:
        """(the distance, the logits (10,) averaged over the views) of one photo."""
        v = torch.from_numpy(np.ascontiguousarray(views(image))).permute(0, 3, 1, 2)
        feats, logits = features_and_logits(model, v)
        return float(mahalanobis(feats.mean(0, keepdim=True), self.means, self.precision)[0]), logits.mean(0)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        save_file({"means": self.means.contiguous(), "precision": self.precision.contiguous()}, str(path),
                  metadata={"alexnet_demo_openset": json.dumps({**self.meta, "threshold": self.threshold})})
        return path


_LOADED: dict[tuple[str, float], OpenSet | None] = {}
_LOCK = threading.Lock()


def load(checkpoint: str | Path) -> OpenSet | None:
    """The open-set rule shipped beside `checkpoint`; None when there is none or it was made for another file
    (a retrained checkpoint needs `python bench/openset.py --write-stats` again)."""
    path = stats_path(checkpoint)
    if not path.is_file():
        return None
    key = (str(path.resolve()), path.stat().st_mtime)
    with _LOCK:
        if key not in _LOADED:
            from safetensors import safe_open
            with safe_open(str(path), "pt") as f:
                meta = json.loads(f.metadata()["alexnet_demo_openset"])
            tensors = load_file(str(path))
            rule = OpenSet(tensors["means"], tensors["precision"], float(meta.pop("threshold")), meta)
            _LOADED[key] = rule if meta.get("checkpoint_sha256") == sha256_of(checkpoint) else None
        return _LOADED[key]


@dataclass
class Verdict:
    """The open-set answer for one photo."""
    none: bool  # True: the photo shows none of the ten classes
    distance: float  # to the nearest class mean (squared Mahalanobis, averaged views)
    threshold: float
    closest: str  # the class the views' mean logits pick

    def text(self, classes) -> str:
        """What the Photo tab says, in Markdown."""
        if self.none:
            return (f"This doesn't look like any of the ten classes I know ({', '.join(classes)}); closest: "
                    f"**{self.closest}**. (Its features are {self.distance:,.0f} from the nearest class's, above "
                    f"{self.threshold:,.0f}: the open-set rule, README: Photos of other things.)")
        return f"(Its features are {self.distance:,.0f} from the nearest class's, within {self.threshold:,.0f}.)"


def judge(classifier, image) -> Verdict | None:
    """The open-set verdict on `image` by `classifier` (inference.Classifier); None when its checkpoint has no
    open-set file (a visitor's own model)."""
    rule = load(classifier.source) if classifier.source and classifier.preset == "cifar10" else None
    if rule is None:
        return None
    distance, logits = rule.score(classifier.model, image)
    return Verdict(distance > rule.threshold, distance, rule.threshold, classifier.classes[int(logits.argmax())])
