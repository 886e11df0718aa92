"""Each channel's favourite test images: the 9 with the highest activation, indexed once beside the checkpoint.

python -m alexnet_demo.channels index --checkpoint checkpoints/mnist.safetensors --data-root ../shared/data
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from safetensors import safe_open

from .checkpoints import atomic_save, sha256_of
from .data import prepare_batch
from .explain import layer_extent, place
from .explain_figures import overlay
from .models import CONV_LAYERS, forward_with_maps

TOP = 9  # favourite images per channel, a 3x3 grid
META_KEY = "alexnet_demo_channels"


class ChannelIndexNotFound(FileNotFoundError):
    """No index file beside the checkpoint; the message says how to build one."""


@dataclass
class ChannelIndex:
    images: torch.Tensor  # (U, C, S, S) uint8: every image some channel likes, each stored once
    labels: torch.Tensor  # (U,) int64 class of each stored image
    dataset_index: torch.Tensor  # (U,) int64 its position in the test set
    slots: dict[str, torch.Tensor]  # layer -> (TOP, channels) int64 row of `images`, best first
    values: dict[str, torch.Tensor]  # layer -> (TOP, channels) float32 max activation on that image
    maps: dict[str, torch.Tensor]  # layer -> (TOP, channels, h, w) uint8 activation map, 255 = `scales`
    scales: dict[str, torch.Tensor]  # layer -> (TOP, channels) float32 activation that 255 stands for
    meta: dict  # checkpoint sha256, dataset, images used, command, layer extents, classes


def index_path_for(checkpoint_path: str | os.PathLike) -> Path:
    """checkpoints/mnist.safetensors -> checkpoints/mnist.channels.safetensors"""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".channels.safetensors")


# ---- building ------------------------------------------------------------------------------------------------


@torch.inference_mode()
def build_index(classifier, dataset, limit: int | None = None, batch_size: int = 100, top: int = TOP,
                command: str = "", progress: bool = False) -> ChannelIndex:
    """One batched pass over `dataset` (or its first `limit` images) keeping, for every conv layer and channel,
    the `top` images with the highest max activation and their maps (at most the native size, max-pooled)."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    native = dataset.images.shape[-1]
    best = {}  # layer -> (values (top, C), dataset index (top, C), maps (top, C, h, w)), best first
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        images = dataset.images[start:min(start + batch_size, n)]
        x = prepare_batch(images, classifier.preset, classifier.input_size, channels_last=True)
        _, maps = forward_with_maps(classifier.model, x)
        index = torch.arange(start, start + len(images))
        for layer, fmap in maps.items():  # (B, C, H, W)
            fmap = fmap.float()
            value = fmap.amax(dim=(2, 3))  # (B, C)
            if fmap.shape[-1] > native:  # mnist conv1 (54 px at 224): no finer than the image it is drawn over
                fmap = F.adaptive_max_pool2d(fmap, native)
            fmap = fmap.contiguous()
            if layer in best:
                old_value, old_index, old_maps = best[layer]
                value = torch.cat([old_value, value])
                every = torch.cat([old_index, index[:, None].expand(-1, value.shape[1])])
                fmap = torch.cat([old_maps, fmap])
            else:
                every = index[:, None].expand(-1, value.shape[1])
            k = min(top, len(value))
            kept, rank = value.topk(k, dim=0)  # (k, C): positions in the concatenation, best first
            channels = torch.arange(value.shape[1])[None, :]
            best[layer] = (kept, every.gather(0, rank), fmap[rank, channels])
        if progress:
            done = start + len(images)
            print(f"\r{done}/{n} images, {time.perf_counter() - t0:.0f} s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    used = torch.unique(torch.cat([ix.flatten() for _, ix, _ in best.values()]))  # sorted dataset indices
    slots, values, maps, scales = {}, {}, {}, {}
    for layer, (value, ix, fmap) in best.items():
        slots[layer] = torch.searchsorted(used, ix.contiguous())
        values[layer] = value
        scale = fmap.amax(dim=(2, 3))  # (top, C)
        maps[layer] = (fmap / scale.clamp(min=1e-12)[:, :, None, None] * 255).round().to(torch.uint8)
        scales[layer] = scale
    extents = {layer: list(layer_extent(classifier.model, layer, classifier.input_size)) for layer in CONV_LAYERS}
    meta = {"preset": classifier.preset, "classes": list(dataset.classes), "dataset": dataset.source,
            "images_used": n, "top": top, "input_size": classifier.input_size, "native_size": native,
            "extents": extents, "command": command, "seconds": round(time.perf_counter() - t0, 1),
            "torch": torch.__version__, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if classifier.source and Path(classifier.source).is_file():
        meta.update(checkpoint=Path(classifier.source).name, checkpoint_sha256=sha256_of(classifier.source))
    return ChannelIndex(dataset.images[used].contiguous(), dataset.labels[used], used, slots, values, maps,
                        scales, meta)


def save_index(index: ChannelIndex, path: str | os.PathLike) -> Path:
    tensors = {"images": index.images, "labels": index.labels.to(torch.uint8),
               "dataset_index": index.dataset_index.to(torch.int32)}
    for layer in index.slots:
        tensors[f"{layer}.slots"] = index.slots[layer].to(torch.int16 if len(index.images) < 32768 else torch.int32)
        tensors[f"{layer}.values"] = index.values[layer].to(torch.float32)
        tensors[f"{layer}.maps"] = index.maps[layer]
        tensors[f"{layer}.scales"] = index.scales[layer].to(torch.float32)
    return atomic_save(tensors, path, {META_KEY: json.dumps(index.meta)})


# ---- reading -------------------------------------------------------------------------------------------------


def load_index(path: str | os.PathLike) -> ChannelIndex:
    """The index at `path` (kept in memory once read); ChannelIndexNotFound says how to build a missing one."""
    path = Path(path)
    if not path.is_file():
        checkpoint = path.with_name(path.name.replace(".channels.safetensors", ".safetensors"))
        raise ChannelIndexNotFound(
            f"{path}: no channel index for this model yet. Build it from the test set (a few minutes on a CPU; "
            f"--limit N for a quicker subset):\n  python -m alexnet_demo.channels index --checkpoint {checkpoint} "
            f"--data-root <data root>")
    return _load(str(path.resolve()), path.stat().st_mtime)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> ChannelIndex:
    with safe_open(path, framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
        t = {k: f.get_tensor(k) for k in f.keys()}
    layers = [layer for layer in CONV_LAYERS if f"{layer}.slots" in t]
    return ChannelIndex(t["images"], t["labels"].long(), t["dataset_index"].long(),
                        {k: t[f"{k}.slots"].long() for k in layers}, {k: t[f"{k}.values"] for k in layers},
                        {k: t[f"{k}.maps"] for k in layers}, {k: t[f"{k}.scales"] for k in layers}, meta)


@dataclass
class ChannelExamples:
    layer: str
    channel: int
    images: np.ndarray  # (TOP, S, S) or (TOP, S, S, 3) uint8, best first
    heat: np.ndarray  # (TOP, S, S) float32 activation over each image, aligned to its pixels
    activations: np.ndarray  # (TOP,) max activation of the channel on each image
    labels: list[str]  # each image's true class
    dataset_index: np.ndarray  # (TOP,) position in the test set
    overlays: list[np.ndarray]  # each image in gray with its heat in magma, one scale for all nine
    images_used: int  # how many test images the index searched


def channel_examples(index: ChannelIndex, layer: str, channel: int, size: int = 112) -> ChannelExamples:
    """Channel `channel` of `layer`'s favourite images with their activation maps overlaid (`size` px each)."""
    if layer not in index.slots:
        raise ValueError(f"layer {layer!r} does not exist: choose one of {list(index.slots)}")
    n = index.slots[layer].shape[1]
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < n:
        raise ValueError(f"channel {channel!r} does not exist: {layer} has channels 0-{n - 1}")
    rows = index.slots[layer][:, channel]
    images = index.images[rows]  # (TOP, C, S, S)
    images = (images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)).numpy()
    native, input_size = index.meta["native_size"], index.meta["input_size"]
    extent = tuple(index.meta["extents"][layer])
    maps = index.maps[layer][:, channel].float() / 255 * index.scales[layer][:, channel, None, None]
    heat = np.stack([place(m[None, None], extent, input_size, native) for m in maps])
    vmax = float(index.values[layer][0, channel])  # the channel's best: the nine maps share one scale
    classes = index.meta["classes"]
    return ChannelExamples(layer, channel, images, heat, index.values[layer][:, channel].numpy(),
                           [classes[i] for i in index.labels[rows].tolist()], index.dataset_index[rows].numpy(),
                           [overlay(im, h, size, vmax=vmax) for im, h in zip(images, heat)],
                           index.meta["images_used"])


def channel_figure(examples: ChannelExamples) -> Figure:
    """The 3x3 grid of a channel's favourite images, each with its activation map overlaid, values stated."""
    fig = Figure(figsize=(6.4, 7.0), layout="constrained")
    axes = fig.subplots(3, 3).flatten()
    for ax, picture, value, label, at in zip(axes, examples.overlays, examples.activations, examples.labels,
                                             examples.dataset_index):
        ax.imshow(picture)
        ax.set_title(f"{value:.2f} · {label} · #{at}", fontsize=9)
        ax.axis("off")
    silent = float(examples.activations.max()) <= 0
    fig.suptitle(f"{examples.layer} channel {examples.channel}: "
                 + ("never active on the test set" if silent else
                    f"its {len(examples.overlays)} favourite test images (of {examples.images_used:,})")
                 + "\nmax activation · true class · test-set index; magma = activation, 0 to the best",
                 fontsize=10)
    return fig


# ---- command line ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.channels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("index", help="index a checkpoint's channels on its dataset's test set")
    build.add_argument("--checkpoint", required=True, help="e.g. checkpoints/mnist.safetensors")
    build.add_argument("--data-root", default=os.environ.get("ALEXNET_DEMO_DATA"))
    build.add_argument("--limit", type=int, default=None, help="only the first N test images")
    build.add_argument("--batch-size", type=int, default=100)
    build.add_argument("--out", type=Path, default=None, help="default: beside the checkpoint")
    args = parser.parse_args(argv)
    from .data import load_dataset
    from .inference import load_classifier

    classifier = load_classifier(args.checkpoint)
    dataset = load_dataset(classifier.meta.get("dataset", classifier.preset), "test", args.data_root)
    command = "python -m alexnet_demo.channels " + " ".join(argv if argv is not None else sys.argv[1:])
    index = build_index(classifier, dataset, limit=args.limit, batch_size=args.batch_size, command=command,
                        progress=True)
    path = save_index(index, args.out or index_path_for(args.checkpoint))
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {len(index.images)} unique images of "
          f"{index.meta['images_used']}, {index.meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
