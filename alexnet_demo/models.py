"""The two AlexNet presets, shaped like torchvision's alexnet.py (`features`, `classifier`, a four-line forward),
and the one forward walk that also returns every conv layer's feature maps.

The presets follow two write-ups:
- `mnist`: "Building an AlexNet for MNIST Classification" (AlexNet on 1x224x224 digits, Adam 1e-3, batch 128,
  99.23% test after 5 epochs; its parameter total has an FC1 slip, see `layer_table`);
- `cifar10`: the CIFAR-10 AlexNet article (AlexNet adapted to CIFAR-10: 3x50x50 input, BatchNorm after conv1 and
  conv2, ReduceLROnPlateau, 73.4% validation accuracy after 30 epochs).
Neither write-up's address was recorded when this project began; the titles and figures above are what it follows.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclass(frozen=True)
class Preset:
    name: str
    in_channels: int
    input_size: int  # px, square: what the write-up feeds the network
    dataset: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per-channel normalization, on [0, 1] pixels
    std: tuple[float, ...]


MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

PRESETS = {
    "mnist": Preset("mnist", 1, 224, "mnist", MNIST_CLASSES, (0.1307,), (0.3081,)),
    "cifar10": Preset("cifar10", 3, 50, "cifar10", CIFAR10_CLASSES,
                      (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class AlexNet(nn.Module):
    """What both presets share: `features` (the conv stack), then `classifier` (the fully connected head)."""

    features: nn.Sequential
    classifier: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNetMNIST(AlexNet):
    """AlexNet as the MNIST write-up builds it: 1x224x224 in, 46,764,746 parameters. `batch_norm=True` puts a
    BatchNorm after every conv (conv bias off: BN's shift replaces it), which trains in far fewer images."""

    def __init__(self, num_classes: int = 10, input_size: int = 224, dropout: float = 0.5, batch_norm: bool = False,
                 classifier_width: int = 4096):
        super().__init__()
        bn = batch_norm
        self.features = nn.Sequential(OrderedDict([
            *conv_bn(1, nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1, bias=not bn), bn),  # (N, 96, 54, 54)
            ("relu1", nn.ReLU(inplace=True)),
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2)),  # (N, 96, 26, 26)
            *conv_bn(2, nn.Conv2d(96, 256, kernel_size=5, padding=2, bias=not bn), bn),  # (N, 256, 26, 26)
            ("relu2", nn.ReLU(inplace=True)),
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2)),  # (N, 256, 12, 12)
            *conv_bn(3, nn.Conv2d(256, 384, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 384, 12, 12)
            ("relu3", nn.ReLU(inplace=True)),
            *conv_bn(4, nn.Conv2d(384, 384, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 384, 12, 12)
            ("relu4", nn.ReLU(inplace=True)),
            *conv_bn(5, nn.Conv2d(384, 256, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 256, 12, 12)
            ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),  # (N, 256, 5, 5)
        ]))
        flat = flat_features(self.features, 1, input_size)  # 6400 at 224 px
        self.classifier = nn.Sequential(
            nn.Linear(flat, classifier_width), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(classifier_width, classifier_width), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(classifier_width, num_classes),
        )


class AlexNetCIFAR10(AlexNet):
    """AlexNet as the CIFAR-10 write-up builds it: 3x50x50 in, BatchNorm on conv1-2, 21,622,506 parameters.
    `batch_norm=True` adds a BatchNorm after conv3-5 as well (their bias off), so every conv has one."""

    def __init__(self, num_classes: int = 10, input_size: int = 50, dropout: float = 0.5, batch_norm: bool = False,
                 classifier_width: int = 4096):
        super().__init__()
        bn = batch_norm
        self.features = nn.Sequential(OrderedDict([
            *conv_bn(1, nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2, bias=False), True),  # (N, 96, 11, 11)
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2)),  # (N, 96, 5, 5)
            ("relu1", nn.ReLU(inplace=True)),
            *conv_bn(2, nn.Conv2d(96, 256, kernel_size=5, padding=2, bias=False), True),  # (N, 256, 5, 5)
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),  # (N, 256, 3, 3)
            ("relu2", nn.ReLU(inplace=True)),
            *conv_bn(3, nn.Conv2d(256, 384, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 384, 3, 3)
            ("relu3", nn.ReLU(inplace=True)),
            *conv_bn(4, nn.Conv2d(384, 384, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 384, 3, 3)
            ("relu4", nn.ReLU(inplace=True)),
            *conv_bn(5, nn.Conv2d(384, 256, kernel_size=3, padding=1, bias=not bn), bn),  # (N, 256, 3, 3)
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),  # (N, 256, 1, 1)
            ("relu5", nn.ReLU(inplace=True)),
        ]))
        flat = flat_features(self.features, 3, input_size)  # 256 at 50 px
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(flat, classifier_width), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(classifier_width, classifier_width), nn.ReLU(inplace=True),
            nn.Linear(classifier_width, num_classes),
        )


def conv_bn(index: int, conv: nn.Conv2d, batch_norm: bool) -> list[tuple[str, nn.Module]]:
    """`conv{index}`, then `bn{index}` (BatchNorm over its output channels) when `batch_norm`: named layers for
    `features`."""
    layers = [(f"conv{index}", conv)]
    return layers + ([(f"bn{index}", nn.BatchNorm2d(conv.out_channels))] if batch_norm else [])


ARCHITECTURES = {"mnist": AlexNetMNIST, "cifar10": AlexNetCIFAR10}


def _out(size: int, layer: nn.Module) -> int:
    """Spatial size after one conv or pool layer (floor mode, square)."""
    k, s, p = (layer.kernel_size, layer.stride, layer.padding)
    k, s, p = (v[0] if isinstance(v, tuple) else v for v in (k, s, p))
    return (size + 2 * p - k) // s + 1


def layer_sizes(features: nn.Sequential, input_size: int) -> dict[str, int]:
    """Spatial size after each conv/pool layer of `features`, by shape arithmetic (no forward pass)."""
    sizes, size = {}, input_size
    for name, layer in features.named_children():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            size = _out(size, layer)
            sizes[name] = size
    return sizes


def min_input_size(features: nn.Sequential) -> int:
    """Smallest square input for which every layer of `features` still has at least one pixel."""
    size = 1
    while min(layer_sizes(features, size).values()) < 1:
        size += 1
    return size


def flat_features(features: nn.Sequential, in_channels: int, input_size: int) -> int:
    """Width of the first Linear layer: channels x height x width of the conv stack's output."""
    minimum = min_input_size(features)
    if input_size < minimum:
        raise ValueError(f"input_size {input_size} px is too small for these layers: the minimum is {minimum} px")
    out_channels = [m.out_channels for m in features if isinstance(m, nn.Conv2d)][-1]
    side = list(layer_sizes(features, input_size).values())[-1]
    return out_channels * side * side


def build_model(preset: str, input_size: int | None = None, num_classes: int = 10, batch_norm: bool = False,
                dropout: float = 0.5, classifier_width: int = 4096) -> nn.Module:
    """A fresh model of `preset` ("mnist" or "cifar10") for square inputs of `input_size` px (None: the preset's);
    `batch_norm`: a BatchNorm after every conv (False: the write-up's layers); `dropout`: the classifier's rate;
    `classifier_width`: neurons in each hidden fully connected layer (the write-ups': 4096)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, not {preset!r}")
    size = PRESETS[preset].input_size if input_size is None else int(input_size)
    return ARCHITECTURES[preset](num_classes=num_classes, input_size=size, dropout=dropout, batch_norm=bool(batch_norm),
                                 classifier_width=int(classifier_width))


def feature_taps(model: nn.Module) -> dict[str, str]:
    """For each conv layer, the module in `features` whose output (after ReLU) is that layer's feature map.

    The map is taken at the conv's own resolution: after its BatchNorm where there is one, before pooling.
    """
    names = [name for name, _ in model.features.named_children()]
    taps = {}
    for conv in CONV_LAYERS:
        bn = "bn" + conv[4:]
        taps[conv] = bn if bn in names else conv
    return taps


def forward_with_maps(model: nn.Module, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                      start: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`model(x)` stepped through `features` by name: (logits, {"conv1": (N, C, H, W) after ReLU, ..., "conv5"}).

    The one place feature maps are taken (inference, inspection, attribution). `masks` switches channels off:
    {"conv3": (C,) or (N, C) multipliers} scales that layer's output at its tap, before ReLU and pooling, so a 0
    silences the channel for everything downstream; the weights are never touched.
    `start="conv3"` resumes the walk there: `x` is then conv3's map (as returned here) and only the layers after
    its tap run, so a batch of masked variants of one input costs just the rest of the network. Exact for 0/1 and
    other non-negative masks: ReLU is idempotent and commutes with max-pooling and with scaling by m >= 0.
    """
    taps = {tap: conv for conv, tap in feature_taps(model).items()}
    skip = feature_taps(model)[start] if start else None  # the module whose output `x` already is
    maps = {}
    for name, layer in model.features.named_children():
        if skip is None:
            x = layer(x)
        elif name == skip:
            skip, x = None, x.clone()  # x is this tap's map; a copy, so the in-place ReLUs never write the caller's
        else:
            continue
        if name in taps:
            conv = taps[name]
            if masks is not None and conv in masks:
                mask = masks[conv].to(x.dtype)
                x = x * (mask.view(1, -1, 1, 1) if mask.dim() == 1 else mask[:, :, None, None])
            maps[conv] = F.relu(x)  # a new tensor: the in-place ReLUs further on never overwrite it
    logits = model.classifier(torch.flatten(x, 1))
    return logits, maps


def layer_table(preset: str, input_size: int | None = None) -> list[dict]:
    """One row per layer of `preset`: name, output shape (C, H, W or features), parameter count.

    Built on the meta device and walked by shape arithmetic: no weights are allocated or initialised, so the app
    shows both tables without spending a second of its start-up on random init of 68M parameters.
    """
    with torch.device("meta"):
        model = build_model(preset, input_size)
    size = PRESETS[preset].input_size if input_size is None else input_size
    shape = (PRESETS[preset].in_channels, size, size)
    rows = []
    for section in ("features", "classifier"):
        for name, layer in getattr(model, section).named_children():
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                side = _out(shape[1], layer)
                shape = (getattr(layer, "out_channels", shape[0]), side, side)
            elif isinstance(layer, nn.Linear):
                shape = (layer.out_features,)
            elif section == "classifier" and len(shape) == 3:
                shape = (shape[0] * shape[1] * shape[2],)  # flatten before the classifier
            rows.append({"layer": f"{section}.{name}", "type": type(layer).__name__, "output": shape,
                         "params": sum(p.numel() for p in layer.parameters())})
    return rows


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_table(preset: str) -> str:
    """`preset`'s layers as a Markdown table (output shape, parameters, total), for the README and the app."""
    lines = ["| layer | type | output | parameters |", "|---|---|---|---:|"]
    rows = layer_table(preset)
    lines += [f"| {r['layer']} | {r['type']} | {' × '.join(map(str, r['output']))} | {r['params']:,} |"
              for r in rows]
    total = sum(r["params"] for r in rows)  # every parameter sits in `features` or `classifier`
    lines.append(f"| **total** | | | **{total:,}** |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m alexnet_demo.models: the README's model tables
    for name in PRESETS:
        print(f"### `{name}`: {PRESETS[name].in_channels}×{PRESETS[name].input_size}×{PRESETS[name].input_size} in\n")
        print(model_table(name) + "\n")
