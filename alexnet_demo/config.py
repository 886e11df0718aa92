"""What defines a training run: `TrainConfig` (CLI flags, the app's form and checkpoint metadata are made from it)
and the named recipes that made the shipped checkpoints."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch

from .data import DATASETS
from .models import PRESETS, build_model, min_input_size

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "plateau", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
TUNES = ("head", "classifier", "conv5", "all")  # which layers a run trains; the others keep the starting file's


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are the MNIST write-up's (Adam 1e-3, batch 128, 5 epochs)."""

    dataset: str = field(default="mnist", metadata={"help": "mnist or cifar10"})
    preset: str | None = field(default=None, metadata={"help": "model preset; None: the dataset's own"})
    batch_norm: bool = field(default=False, metadata={
        "help": "BatchNorm after every conv (conv bias off): far fewer images to the same accuracy; off: the "
                "write-up's layers (mnist none, cifar10 on conv1-2)"})
    dropout: float = field(default=0.5, metadata={"help": "classifier dropout rate, 0 to 0.9 (write-ups: 0.5)"})
    epochs: int = field(default=5, metadata={"help": "passes over the training images (MNIST write-up: 5)"})
    batch_size: int = field(default=128, metadata={"help": "images per step (MNIST write-up: 128)"})
    optimizer: str = field(default="adam", metadata={"help": "adam (the write-ups') or sgd (Nesterov momentum)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (write-ups: Adam at 1e-3)"})
    momentum: float = field(default=0.9, metadata={
        "help": "SGD momentum, with schedule none or plateau; onecycle cycles it (and Adam's beta1) itself, 0.95 at "
                "the start and end, 0.85 at the peak learning rate, as the shipped recipes were trained"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 penalty per step, as in torch.optim"})
    schedule: str = field(default="none", metadata={"help": "none, plateau (CIFAR write-up) or onecycle"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing, 0 to 0.5"})
    augment: bool = field(default=False, metadata={"help": "random shift ±2 px (MNIST); crop ±4 px + flip (CIFAR)"})
    sketch: float = field(default=0.0, metadata={
        "help": "share of training digits (0 to 1) shown as a visitor draws them: the skeleton traced with a round "
                "brush 0.03 to 0.4 of the digit's height, then the app's preprocessing (sketch.redraw); MNIST only"})
    photo: float = field(default=0.0, metadata={
        "help": "share of training photos (0 to 1) framed and coloured as a visitor's photo might be: zoomed in or "
                "out on a background, rotated, colour-jittered, some JPEG, blurred, noisy (photo_augment.photo_batch); "
                "CIFAR-10 only"})
    outliers: float = field(default=0.0, metadata={
        "help": "outlier images per training image (0 to 1: jigsaws of training photos and colour fields, "
                "photo_augment.outlier_images), trained towards equal probabilities (outlier exposure); CIFAR-10 only"})
    distill: float = field(default=0.0, metadata={
        "help": "weight (0 to 10; 0: off) of a knowledge-distillation term beside the class loss: the init file, "
                "frozen, is the teacher, and every training image, re-photographed or not, is pulled towards the "
                "teacher's softened probabilities for the same image as it is (training.distill_loss, Hinton et al. "
                "2015); keeps what the init file knows while fine-tuning; needs init"})
    interpolate: float = field(default=1.0, metadata={
        "help": "share (0 to 1] of the way from the init file's weights to the trained ones that the finished file "
                "keeps: init + share * (trained - init), before the final test (weight-space ensembling, WiSE-FT, "
                "Wortsman et al. 2022: what fine-tuning learned, at less cost to what the init file knew); the "
                "epochs' checkpoints and validation figures are of the trained weights; 1: those; below 1 needs init"})
    subset: int | None = field(default=None, metadata={"help": "training images to use, stratified; None: all"})
    val_fraction: float = field(default=0.0, metadata={
        "help": "held out of training (stratified) and evaluated each epoch; 0: evaluate on test each epoch"})
    init: str | None = field(default=None, metadata={
        "help": "checkpoint whose weights the run starts from (fine-tuning; same preset and input size); "
                "None: fresh weights"})
    examples: str | None = field(default=None, metadata={
        "help": "a folder of your own examples, <class>/<image> (torchvision's ImageFolder layout), trained on "
                "instead of the dataset: drawings with dataset mnist, photos with cifar10; val_fraction of each "
                "class (at least one) is held out as the test; None: the dataset's own images"})
    tune: str = field(default="all", metadata={
        "help": "which layers train: head (the last layer), classifier (every fully connected layer), conv5 (those "
                "and conv5) or all; all but all need init (the frozen layers keep its weights)"})
    input_size: int | None = field(default=None, metadata={"help": "px, square; None: the preset's (224 / 50)"})
    classifier_width: int = field(default=4096, metadata={
        "help": "neurons in each of the two hidden fully connected layers (the write-ups': 4096); at CIFAR-10's 47 px "
                "the 4096-wide layers are most of a step's cost on a CPU"})
    amp: bool = field(default=False, metadata={
        "help": "bf16 autocast, on a GPU or a CPU; pays on a CPU with AVX512-BF16/AMX at 224 px (2.5x on this "
                "project's Xeon), not at the visitor's 65 px nor on AMD EPYC (the Train tab measures before it "
                "preselects it)"})
    channels_last: bool = field(default=True, metadata={"help": "NHWC memory format for the convolutions"})
    seed: int = field(default=0, metadata={"help": "same seed on CPU gives the same numbers"})
    device: str = field(default="auto", metadata={"help": "auto (cuda, then mps, then cpu), cuda, mps or cpu"})
    data_root: str | None = field(default=None, metadata={"help": "else env ALEXNET_DEMO_DATA, else ./data"})
    log_every: int = field(default=20, metadata={"help": "steps between training events (one host sync each)"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate on at most this many images"})
    max_batches: int | None = field(default=None, metadata={"help": "steps per epoch at most (dry runs)"})
    out: str | None = field(default=None, metadata={"help": "checkpoint path, written after every epoch"})
    save_state: bool = field(default=True, metadata={
        "help": "with --out, also write <out>.state.safetensors each epoch (weights, optimizer, RNG) for --resume"})
    time_limit_s: float | None = field(default=None, metadata={
        "help": "s from the run's start: stop between steps, then test the model as it is; None: no limit"})
    snapshot_every: int | None = field(default=None, metadata={
        "help": "optimizer steps between time-lapse snapshots of a probe image (also at step 0 and each epoch's "
                "end); None: none"})

    def __post_init__(self):
        if self.preset is None:
            self.preset = self.dataset
        if self.input_size is None and self.preset in PRESETS:
            self.input_size = PRESETS[self.preset].input_size
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field out of range."""
        def need(ok: bool, name: str, allowed: str):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range: {allowed}")

        need(self.dataset in DATASETS, "dataset", f"one of {DATASETS}")
        need(self.preset in PRESETS, "preset", f"one of {tuple(PRESETS)}")
        need(PRESETS[self.preset].in_channels == PRESETS[self.dataset].in_channels, "preset",
             f"a preset taking {PRESETS[self.dataset].in_channels}-channel images like {self.dataset}")
        need(isinstance(self.batch_norm, bool), "batch_norm", "True or False")
        need(_is_num(self.dropout) and 0 <= self.dropout <= 0.9, "dropout", "a number in [0, 0.9]")
        need(_is_int(self.epochs) and 1 <= self.epochs <= 1000, "epochs", "an integer from 1 to 1000")
        need(_is_int(self.batch_size) and 2 <= self.batch_size <= 8192, "batch_size", "an integer from 2 to 8192")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(_is_num(self.lr) and 0 < self.lr <= 10, "lr", "a number in (0, 10]")
        need(_is_num(self.momentum) and 0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        need(_is_num(self.weight_decay) and 0 <= self.weight_decay <= 1, "weight_decay", "a number in [0, 1]")
        need(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}")
        need(_is_num(self.label_smoothing) and 0 <= self.label_smoothing <= 0.5, "label_smoothing", "0 to 0.5")
        need(_is_num(self.sketch) and 0 <= self.sketch <= 1 and (self.sketch == 0 or self.dataset == "mnist"),
             "sketch", "a share from 0 to 1, and 0 unless the dataset is mnist (brush strokes are a drawing's)")
        need(_is_num(self.photo) and 0 <= self.photo <= 1 and (self.photo == 0 or self.dataset == "cifar10"),
             "photo", "a share from 0 to 1, and 0 unless the dataset is cifar10 (photo framing is a photo's)")
        need(_is_num(self.outliers) and 0 <= self.outliers <= 1 and (self.outliers == 0 or self.dataset == "cifar10"),
             "outliers", "0 to 1 outlier images per training image, and 0 unless the dataset is cifar10")
        need(_is_num(self.distill) and 0 <= self.distill <= 10, "distill", "a weight from 0 (off) to 10")
        need(self.distill == 0 or bool(self.init), "distill", "0 unless init names the checkpoint that teaches")
        need(_is_num(self.interpolate) and 0 < self.interpolate <= 1, "interpolate", "a share in (0, 1]")
        need(self.interpolate == 1 or bool(self.init), "interpolate",
             "1 unless init names the checkpoint to start from")
        need(self.tune in TUNES, "tune", f"one of {TUNES}")
        need(self.tune == "all" or bool(self.init), "tune",
             "all unless init names a checkpoint to start from (frozen layers keep its weights)")
        need(self.examples is None or (isinstance(self.examples, str) and bool(self.examples)), "examples",
             "None or a folder path")
        need(self.examples is None or self.subset is None, "subset", "None with examples (every example is used)")
        need(self.examples is None or self.sketch == 0, "sketch", "0 with examples (they are drawn already)")
        need(self.subset is None or (_is_int(self.subset) and self.subset >= 2), "subset", "None or an integer ≥ 2")
        need(_is_num(self.val_fraction) and 0 <= self.val_fraction <= 0.5, "val_fraction", "a number in [0, 0.5]")
        low = smallest_input_size(self.preset)
        need(_is_int(self.input_size) and low <= self.input_size <= 512, "input_size",
             f"None or an integer from {low} (the smallest the {self.preset} layers take) to 512")
        need(_is_int(self.classifier_width) and 16 <= self.classifier_width <= 8192, "classifier_width",
             "an integer from 16 to 8192 (neurons)")
        need(self.device in DEVICES, "device", f"one of {DEVICES}")
        need(_is_int(self.log_every) and self.log_every >= 1, "log_every", "an integer ≥ 1")
        need(self.eval_limit is None or (_is_int(self.eval_limit) and self.eval_limit >= 1), "eval_limit",
             "None or an integer ≥ 1")
        need(self.max_batches is None or (_is_int(self.max_batches) and self.max_batches >= 1), "max_batches",
             "None or an integer ≥ 1")
        need(self.time_limit_s is None or (_is_num(self.time_limit_s) and self.time_limit_s > 0), "time_limit_s",
             "None or a number of seconds > 0")
        need(self.snapshot_every is None or (_is_int(self.snapshot_every) and self.snapshot_every >= 1),
             "snapshot_every", "None or an integer ≥ 1 (steps)")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def smallest_input_size(preset: str) -> int:
    """The smallest square input (px) `preset`'s layers take: 65 for mnist, 47 for cifar10."""
    with torch.device("meta"):  # shape arithmetic only: no weights are allocated
        return min_input_size(build_model(preset).features)


def config_fields() -> list:
    """The dataclass fields, for building CLI flags and forms from one definition."""
    return list(fields(TrainConfig))


# The recipes behind the shipped checkpoints (README: Shipped checkpoints) and a visitor's CPU run. `--recipe NAME`
# starts from one; any flag given beside it overrides. A stratified validation split guides choices; the test set
# gives the figure.
RECIPES: dict[str, dict] = {
    # The MNIST file is made in two runs. First, 99.50% test: Adam at the write-up's 1e-3 and batch 128, one-cycle
    # (25% warm-up, linear anneal), 2 epochs (the file shipped until the second run replaced it)
    "mnist_base": dict(dataset="mnist", epochs=2, schedule="onecycle", lr=1e-3, val_fraction=0.05, log_every=10),
    # Then that file fine-tuned at a tenth of its learning rate, one pass over the training digits, half of them
    # re-drawn as a visitor draws them (sketch.redraw): 99.50% test still, and digits drawn small with a bold brush
    # read far better (bench/drawing.py, 60 px tall with an 18 px brush: 91.4% -> 97.2% of 1,000)
    "mnist": dict(dataset="mnist", init="runs/mnist-base.safetensors", epochs=1, sketch=0.5, schedule="onecycle",
                  lr=1e-4, val_fraction=0.05, log_every=10),
    # 82.25% test: SGD Nesterov 0.02 one-cycle, weight decay, label smoothing, shift + flip, 40 epochs
    "cifar10": dict(dataset="cifar10", epochs=40, optimizer="sgd", lr=0.02, weight_decay=5e-4, label_smoothing=0.1,
                    augment=True, schedule="onecycle", val_fraction=0.05, log_every=20),
    # The file above fine-tuned for photos as visitors take them (issue 20): half the training photos framed and
    # coloured like a visitor's (photo_augment.photo_batch), every photo pulled towards the file above's probabilities
    # for the image as it is (distill, Hinton et al. 2015) beside its class, one-cycle SGD at 0.003 (a seventh of the
    # first run's peak) for 6 epochs, and the file written half way from the file above's weights (WiSE-FT): the
    # largest share whose 2,500 held-out images as they are lose nothing against the file above's (`python
    # bench/bench.py photos ... --split val --shares`). Held out, as they are / re-photographed: 82.40% / 51.5% ->
    # 82.40% / 60.0% (the trained weights, share 1: 80.92% / 63.8%). Test: 82.25% / 50.6% -> 82.08% / 59.0%
    # (README: Photos of other things). Before: 4 epochs at 0.005, share 0.6 (within 0.2 points held out): 81.77%
    # test; 3 epochs at 0.01 with outlier exposure, no distillation: 80.80%
    "cifar10_photos": dict(dataset="cifar10", init="runs/cifar10-base.safetensors", epochs=6, optimizer="sgd",
                           lr=0.003, weight_decay=5e-4, label_smoothing=0.1, augment=True, photo=0.5, distill=1.0,
                           interpolate=0.5, schedule="onecycle", val_fraction=0.05, log_every=20),
    # A visitor's run on a CPU (the Train tab's form starts from these): one pass over a stratified subset at the
    # smallest input the layers take, sized so that Start -> Done (staging, training, the final test on all 10,000
    # test images) fits 45 s (MNIST) / 90 s (CIFAR-10) on 2 cores. BatchNorm after every conv, no dropout, label
    # smoothing and one-cycle SGD learn far more per image than the write-ups' layers and Adam. Measured through the
    # tab by `python bench/bench.py visitor`; the search: bench/visitor_search.py (README: Watch it learn).
    # MNIST narrows the classifier to 1024 too: at 65 px the 4096-wide layers were a third of a step (209 against
    # 306 images/s in fp32, 261 against 337 under bf16 autocast, on this project's 2-core Xeon), at the same accuracy
    "mnist_visitor": dict(dataset="mnist", epochs=1, batch_size=128, lr=0.05, optimizer="sgd", schedule="onecycle",
                          subset=10_000, input_size=65, batch_norm=True, dropout=0.0, label_smoothing=0.1,
                          classifier_width=1024, val_fraction=0.01),
    # CIFAR-10 also narrows the classifier to 1024: at 47 px the 4096-wide layers were most of a step, and 1.8x
    # the images in the same seconds learn more than the width loses
    "cifar10_visitor": dict(dataset="cifar10", epochs=1, batch_size=128, lr=0.02, optimizer="sgd", schedule="onecycle",
                            subset=40_000, input_size=47, batch_norm=True, dropout=0.0, label_smoothing=0.1,
                            classifier_width=1024, val_fraction=0.01),
}

# The recipe that makes each fine-tuning recipe's starting file (its `init`), which a fresh clone does not have
PARENTS = {"mnist": "mnist_base", "cifar10_photos": "cifar10"}


def recipe_config(name: str, **overrides) -> TrainConfig:
    """The named recipe as a TrainConfig, with `overrides` on top (ValueError for an unknown name)."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {tuple(RECIPES)}, not {name!r}")
    return TrainConfig(**{**RECIPES[name], **overrides})
