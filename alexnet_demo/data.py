"""MNIST and CIFAR-10 as uint8 tensors (decoded once, cached), and per-batch resize/augment/normalize on the device."""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from .models import CIFAR10_CLASSES, MNIST_CLASSES, PRESETS

DATASETS = ("mnist", "cifar10")
TRAIN_IMAGES = {"mnist": 60_000, "cifar10": 50_000}  # the size of each official training set
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


_TORCHVISION_LOCK = threading.Lock()


def import_torchvision():
    """torchvision, imported on first use (it costs ~1.8 s, kept out of app start) and under one lock: its package
    imports its submodules circularly, so two threads importing it at once (the app's warm-up and a visitor's first
    request, or a test loading data) can deadlock in CPython's import locks."""
    with _TORCHVISION_LOCK:
        import torchvision
    return torchvision


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message lists where we looked."""


@dataclass
class Dataset:
    images: torch.Tensor  # (N, C, H, W) uint8, the dataset's native size
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    source: str  # where it came from, for messages and checkpoint metadata
    drawn: torch.Tensor | None = None  # (N, C, H, W) uint8: the same digits as a visitor's brush draws them
    # (sketch.redraw_chunk), when a run asks for them

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "Dataset":
        drawn = None if self.drawn is None else self.drawn.to(device)
        return Dataset(self.images.to(device), self.labels.to(device), self.classes, self.source, drawn)

    def subset(self, index: torch.Tensor) -> "Dataset":
        drawn = None if self.drawn is None else self.drawn[index]
        return Dataset(self.images[index], self.labels[index], self.classes, self.source, drawn)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else env ALEXNET_DEMO_DATA, else ./data."""
    return Path(data_root or os.environ.get("ALEXNET_DEMO_DATA") or "data")


def load_dataset(name: str, split: str, data_root=None, download: bool = True) -> Dataset:
    """The `split` ("train" or "test") of `name` ("mnist" or "cifar10") as uint8 tensors on the CPU."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, not {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = resolve_data_root(data_root)
    return _load_mnist(root, split, download) if name == "mnist" else _load_cifar10(root, split, download)


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
DOWNLOAD_SIZES = {"mnist": "~12 MB", "cifar10": "~170 MB"}  # what torchvision fetches on a first run


def dataset_on_disk(name: str, data_root=None) -> bool:
    """Whether `load_dataset(name, ...)` finds both splits on disk, i.e. needs no download."""
    root = resolve_data_root(data_root)
    if name == "mnist":  # the decompressed files torchvision's MNIST checks for
        return all((root / "MNIST" / "raw" / f).is_file() for f in MNIST_FILES)
    folders = [root / "cifar10-jpg", root / "cifar10", root]
    return any((f / "train").is_dir() and (f / "test").is_dir() for f in folders) or \
        all((root / "cifar-10-batches-py" / f).is_file() for f in CIFAR10_BATCHES)


def _missing(name: str, looked: list[Path], error: Exception | None) -> DataNotFoundError:
    paths = "\n".join(f"  - {p.resolve()}" for p in looked)
    why = f"\nThe download failed too: {error}" if error else ""
    return DataNotFoundError(
        f"{name} was not found. Looked in:\n{paths}{why}\n"
        f"Supply the files there (torchvision's layout), pass --data-root, or set ALEXNET_DEMO_DATA."
    )


def _load_mnist(root: Path, split: str, download: bool) -> Dataset:
    MNIST = import_torchvision().datasets.MNIST

    raw = root / "MNIST" / "raw"
    error = None
    for attempt_download in (False, True) if download else (False,):
        try:
            ds = MNIST(str(root), train=split == "train", download=attempt_download)
            return Dataset(ds.data.unsqueeze(1).contiguous(), ds.targets.long(), MNIST_CLASSES, str(raw))
        except Exception as e:  # torchvision raises RuntimeError when missing, URLError etc. when offline
            error = e if attempt_download else None
    raise _missing("MNIST", [raw], error)


def _load_cifar10(root: Path, split: str, download: bool) -> Dataset:
    CIFAR10 = import_torchvision().datasets.CIFAR10

    pickled = root / "cifar-10-batches-py"
    folders = [root / "cifar10-jpg" / split, root / "cifar10" / split, root / split]
    for folder in folders:
        if folder.is_dir():
            return load_image_folder(folder, cache_dir=root)
    error = None
    for attempt_download in (False, True) if download else (False,):
        try:
            # torchvision's CIFAR10 reads its pickled batches itself; we never unpickle a file ourselves.
            ds = CIFAR10(str(root), train=split == "train", download=attempt_download)
            images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            return Dataset(images, torch.tensor(ds.targets), CIFAR10_CLASSES, str(pickled))
        except Exception as e:
            error = e if attempt_download else None
    raise _missing("CIFAR-10", [pickled, *folders], error)


def _cache_path(folder: Path, files: list[Path], cache_dir: Path) -> Path:
    """Next to the data when that folder is meant to be written (its write bit is set), else ~/.cache."""
    key = hashlib.sha1(("\n".join(str(f) for f in files) + str(folder.resolve())).encode()).hexdigest()[:12]
    name = f"{folder.parent.name}-{folder.name}-{key}.safetensors"
    beside = cache_dir.is_dir() and cache_dir.stat().st_mode & stat.S_IWUSR
    directory = cache_dir / ".alexnet_demo_cache" if beside else Path.home() / ".cache" / "alexnet_demo"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def load_image_folder(folder: str | os.PathLike, cache_dir=None) -> Dataset:
    """A folder-per-class tree (`folder/<class>/*.jpg`) decoded once into uint8, then cached as safetensors."""
    folder = Path(folder)
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = sorted(f for f in (folder / cls).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataNotFoundError(f"no images found under {folder.resolve()} (expected {folder}/<class>/*.jpg)")
    cache = _cache_path(folder, files, Path(cache_dir or folder.parent))
    if cache.is_file():
        tensors = load_file(str(cache))
        return Dataset(tensors["images"], tensors["labels"], classes, str(folder))
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError(f"images under {folder} differ in size; a dataset tree needs one size (e.g. 32x32)")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(labels, dtype=torch.int64)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    save_file({"images": images, "labels": labels}, str(tmp))
    os.replace(tmp, cache)  # atomic: a reader never sees half a cache
    return Dataset(images, labels, classes, str(folder))


NATIVE = {"mnist": (1, 28), "cifar10": (3, 32)}  # (channels, px) of each dataset's own images


def load_examples(folder: str | os.PathLike, dataset: str) -> Dataset:
    """A visitor's examples, `folder/<class>/<image>` (ImageFolder layout), as `dataset`'s images: uint8 at its
    native size (mnist: 1x28x28 grey, cifar10: 3x32x32 RGB), classes in sorted order as ImageFolder gives them.
    Read fresh every time (a few hundred small files), never cached: the visitor adds and deletes examples."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder}: no such folder of examples")
    channels, size = NATIVE[dataset]
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
    images, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(f) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), Image.BILINEAR)
                array = np.asarray(image)
            images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DataNotFoundError(f"no examples under {folder} (expected {folder}/<class>/<image>.png)")
    return Dataset(torch.from_numpy(np.stack(images)).contiguous(), torch.tensor(labels, dtype=torch.int64), classes,
                   str(folder))


def held_out_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_index, held_out_index): `fraction` of each class held out, rounded, but at least one example of
    every class (with few examples, one each: the nearest to leave-one-out that needs a single run) and never the
    last one it has to learn from. ValueError naming a class with fewer than 2 examples."""
    g = torch.Generator().manual_seed(seed)
    train, held = [], []
    for cls in labels.unique().tolist():
        members = (labels == cls).nonzero().flatten()
        if len(members) < 2:
            raise ValueError(f"class {cls} has {len(members)} example(s): every class needs at least 2 "
                             "(one to learn from, one held out to test on)")
        members = members[torch.randperm(len(members), generator=g)]
        k = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.append(members[:k])
        train.append(members[k:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def with_drawn(data: Dataset, data_root=None, seed: int = 0) -> Dataset:
    """MNIST `data` with `drawn`: every digit re-drawn by a visitor's brush (sketch.redraw, ~7 ms a digit on one
    core, so worked in parallel processes), cached beside the data like a decoded image folder."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from . import sketch
    key = hashlib.sha1(data.images.numpy().tobytes()).hexdigest()[:12]
    cache = _cache_path(Path(data.source), [Path(f"sketch-v1-seed{seed}-{key}")], resolve_data_root(data_root))
    if cache.is_file():
        return Dataset(data.images, data.labels, data.classes, data.source, load_file(str(cache))["drawn"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(cores, len(data) // 20))
    bounds = np.linspace(0, len(data), workers + 1).astype(int)
    chunks = [(data.images[a:b], seed, a) for a, b in zip(bounds, bounds[1:])]
    if workers == 1:
        drawn = sketch.redraw_chunk(*chunks[0])
    else:
        # spawned, not forked: a fork of a process that has run OpenMP can hang; one thread each for tiny tensors
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), torch.set_num_threads, (1,)) as pool:
            drawn = torch.cat(list(pool.map(sketch.redraw_chunk, *zip(*chunks))))
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    save_file({"drawn": drawn.contiguous()}, str(tmp))
    os.replace(tmp, cache)
    return Dataset(data.images, data.labels, data.classes, data.source, drawn)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_index, val_index): exactly round(fraction * N) images in validation, each class in proportion.

    Each image gets its rank within its (shuffled) class as a fraction of the class size; taking the lowest
    fractions first picks every class at the same rate.
    """
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    order = torch.randperm(len(labels), generator=g)
    position = torch.empty(len(labels))
    for cls in labels.unique():
        members = order[labels[order] == cls]
        position[members] = (torch.arange(len(members)) + 0.5) / len(members)
    ranked = torch.argsort(position + torch.rand(len(labels), generator=g) * 1e-6)
    k = int(round(fraction * len(labels)))
    return ranked[k:].sort().values, ranked[:k].sort().values


def augment_settings(dataset: str) -> dict:
    """Random shift (native px) and flip used when augmenting: digits shift but never mirror."""
    return {"shift": 2, "flip": False, "padding_mode": "zeros"} if dataset == "mnist" else \
        {"shift": 4, "flip": True, "padding_mode": "reflection"}


def prepare_batch(images: torch.Tensor, preset: str, input_size: int, *, augment: bool = False,
                  generator: torch.Generator | None = None, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, h, w) -> normalized float (N, C, input_size, input_size), on the images' device.

    Resize, random shift and flip are one `grid_sample` (a per-sample affine map), so augmentation and
    upscaling cost a single pass over the output pixels instead of a PIL round trip per image.
    """
    p = PRESETS[preset]
    x = images.float().div_(255)
    n, c, h, w = x.shape
    if augment:
        settings = augment_settings(p.dataset)
        theta = torch.zeros(n, 2, 3, device=x.device)
        scale_x = torch.ones(n, device=x.device)
        if settings["flip"]:
            flips = torch.rand(n, generator=generator, device=x.device) < 0.5
            scale_x = torch.where(flips, -scale_x, scale_x)
        s = settings["shift"]
        shift = torch.randint(-s, s + 1, (n, 2), generator=generator, device=x.device).float()
        theta[:, 0, 0], theta[:, 1, 1] = scale_x, 1.0
        theta[:, 0, 2], theta[:, 1, 2] = shift[:, 0] * 2 / w, shift[:, 1] * 2 / h
        grid = F.affine_grid(theta, [n, c, input_size, input_size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=settings["padding_mode"], align_corners=False)
    elif x.shape[-2:] != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False,
                          antialias=input_size < x.shape[-2])
    mean = torch.tensor(p.mean, device=x.device).view(1, c, 1, 1)
    std = torch.tensor(p.std, device=x.device).view(1, c, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
