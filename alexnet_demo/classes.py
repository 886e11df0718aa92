"""Your classes: a visitor's own examples (drawings or photos) kept per session as a folder `<class>/<image>.png`,
read as the Draw and Photo tabs read their input, and the TrainConfig that teaches them to the shipped model."""
from __future__ import annotations

import io
import math
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .checkpoints import load_checkpoint, resolve_checkpoint
from .config import TrainConfig
from .data import IMAGE_SUFFIXES, load_examples
from .preprocessing import digit_to_mnist, open_image, photo_to_cifar

KINDS = {"drawings": "mnist", "photos": "cifar10"}  # what the examples are -> the shipped model they start from
MIN_CLASSES, MAX_CLASSES = 2, 10
MAX_PER_CLASS = 500  # examples
MAX_ZIP_BYTES = 50 * 1024 * 1024  # the zip file itself
MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # what its members claim to unpack to (a zip bomb is refused unread)
MIN_PER_CLASS = 2  # one to learn from, one held out to test on
HELD_OUT = 0.2  # of each class's examples, at least one (data.held_out_split)
ROOT = Path(tempfile.gettempdir()) / "alexnet_demo" / "classes"  # never under checkpoints/
NAME = re.compile(r"^[\w][\w \-.]{0,39}$")  # a class name is a folder name: letters, digits, space, - _ .


@dataclass
class Report:
    """What one addition did: how many examples went in, and each file left out with why."""
    added: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)

    def message(self) -> str:
        text = f"Added {self.added} example{'s' * (self.added != 1)}."
        if self.skipped:
            shown = "; ".join(f"{name}: {why}" for name, why in self.skipped[:8])
            more = f"; and {len(self.skipped) - 8} more" if len(self.skipped) > 8 else ""
            text += f" Skipped {len(self.skipped)}: {shown}{more}."
        return text


class Workspace:
    """One visitor's classes on disk: `folder/<class>/<n>.png`, each example already as the network's input at
    its dataset's size (drawings 28x28 grey, MNIST-style; photos 32x32 RGB). Nothing here is shared between
    visitors: every workspace has its own folder, removed by `close`."""

    def __init__(self, kind: str = "drawings", folder: Path | None = None):
        if kind not in KINDS:
            raise ValueError(f"examples must be one of {tuple(KINDS)}, not {kind!r}")
        self.kind, self.dataset = kind, KINDS[kind]
        self.folder = Path(folder) if folder else ROOT / uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parent: str | None = None  # a checkpoint the next run continues from (None: the shipped model)

    # ---- classes and examples ------------------------------------------------------------------------------

    def classes(self) -> list[str]:
        return sorted(d.name for d in self.folder.iterdir() if d.is_dir()) if self.folder.is_dir() else []

    def examples(self, name: str) -> list[Path]:
        return sorted((self.folder / name).glob("*.png"), key=lambda p: int(p.stem))

    def counts(self) -> dict[str, int]:
        return {name: len(self.examples(name)) for name in self.classes()}

    def add_class(self, name: str) -> str:
        """Make the class `name` (stripped); ValueError for a bad name or an 11th class. Existing: no change."""
        name = (name or "").strip()
        if not NAME.match(name):
            raise ValueError(f"class name {name!r}: use 1 to 40 letters, digits, spaces, '-', '_' or '.', "
                             "starting with a letter or digit")
        if name not in self.classes():
            if len(self.classes()) >= MAX_CLASSES:
                raise ValueError(f"at most {MAX_CLASSES} classes: delete one before adding {name!r}")
            (self.folder / name).mkdir()
        return name

    def remove_class(self, name: str) -> None:
        if name not in self.classes():
            raise ValueError(f"no class {name!r}")
        shutil.rmtree(self.folder / name)

    def remove_example(self, name: str, index: int) -> None:
        """Delete the class's example number `index` (0-based, in the order shown)."""
        examples = self.examples(name) if name in self.classes() else []
        if not 0 <= index < len(examples):
            raise ValueError(f"class {name!r} has no example {index + 1} (it has {len(examples)})")
        examples[index].unlink()

    def clear(self) -> None:
        for name in self.classes():
            shutil.rmtree(self.folder / name)
        self.parent = None

    def close(self) -> None:
        """Remove the workspace's folder (the session ended)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _store(self, name: str, seen: np.ndarray) -> None:
        examples = self.examples(name)
        if len(examples) >= MAX_PER_CLASS:
            raise ValueError(f"class {name!r} is full ({MAX_PER_CLASS} examples)")
        number = int(examples[-1].stem) + 1 if examples else 0
        Image.fromarray(seen).save(self.folder / name / f"{number}.png")

    def read(self, image) -> np.ndarray | None:
        """An image as the network will see it (as the Draw or Photo tab reads it); None for an empty drawing."""
        return digit_to_mnist(image) if self.kind == "drawings" else photo_to_cifar(image)

    def add_drawing(self, name: str, image) -> Report:
        """One example from the sketchpad, the webcam or an array; ValueError for an empty canvas."""
        seen = self.read(image)
        if seen is None:
            raise ValueError("nothing drawn: draw an example on the canvas first")
        self._store(self.add_class(name), seen)
        return Report(1)

    def add_files(self, name: str, paths) -> Report:
        """Several uploaded images into class `name`; each unreadable file is reported by name and skipped."""
        name, report = self.add_class(name), Report()
        for path in paths or []:
            self._add_one(name, Path(path).name, lambda p=path: open_image(p), report)
        return report

    def _add_one(self, name: str, label: str, opener, report: Report) -> None:
        if len(self.examples(name)) >= MAX_PER_CLASS:
            report.skipped.append((label, f"class {name!r} is full ({MAX_PER_CLASS} examples)"))
            return
        try:
            seen = self.read(opener())
        except Exception as e:  # noqa: BLE001 - any undecodable file is the visitor's to hear about, not a crash
            report.skipped.append((label, f"not a readable image ({type(e).__name__}: {e})"[:160]))
            return
        if seen is None:
            report.skipped.append((label, "blank: no drawing found in it"))
            return
        self._store(name, seen)
        report.added += 1

    def add_zip(self, path) -> Report:
        """A zip of `<class>/<image>` folders (ImageFolder layout; one enclosing folder is allowed). Classes are
        made as named; files outside a class folder, not images, or unreadable are reported and skipped."""
        path = Path(path)
        if path.stat().st_size > MAX_ZIP_BYTES:
            raise ValueError(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB: a zip may be at most "
                             f"{MAX_ZIP_BYTES // 2**20} MB")
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{path.name} is not a readable zip file ({e})") from None
        with archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and not any(part.startswith(("__MACOSX", ".")) for part in PurePosixPath(m.filename).parts)]
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise ValueError(f"{path.name} unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
            parts = [PurePosixPath(m.filename).parts for m in members]
            deep = [p for p in parts if len(p) == 3]  # one enclosing folder around the class folders?
            common = deep[0][0] if deep and all(len(p) != 2 and p[0] == deep[0][0] for p in deep) else None
            report, found = Report(), []
            for member, part in zip(members, parts):
                part = part[1:] if common and part[0] == common else part
                if len(part) != 2:
                    report.skipped.append((member.filename, "not in a <class>/<image> folder"))
                    continue
                if PurePosixPath(part[1]).suffix.lower() not in IMAGE_SUFFIXES:
                    report.skipped.append((member.filename, f"not an image ({', '.join(IMAGE_SUFFIXES)})"))
                    continue
                found.append((part[0], member))
            for cls in sorted({cls for cls, _ in found}):
                try:
                    self.add_class(cls)
                except ValueError as e:
                    report.skipped += [(m.filename, str(e)) for c, m in found if c == cls]
            known = set(self.classes())
            for cls, member in found:
                if cls in known:
                    self._add_one(cls, member.filename,
                                  lambda m=member: Image.open(io.BytesIO(archive.read(m))), report)
        if not found:
            raise ValueError(f"{path.name} holds no images in <class>/<image> folders"
                             + (f" ({report.message()})" if report.skipped else ""))
        return report

    # ---- training -----------------------------------------------------------------------------------------

    def check(self) -> None:
        """ValueError saying what is missing before a run can start: 2 to 10 classes, 2+ examples each."""
        counts = self.counts()
        if len(counts) < MIN_CLASSES:
            raise ValueError(f"name at least {MIN_CLASSES} classes to tell apart (you have {len(counts)}: "
                             f"{', '.join(counts) or 'none'})")
        few = [f"{name} ({n})" for name, n in counts.items() if n < MIN_PER_CLASS]
        if few:
            raise ValueError(f"every class needs at least {MIN_PER_CLASS} examples (one is held out to test on); "
                             f"add more to: {', '.join(few)}")

    def starting_file(self) -> str:
        """The checkpoint a run starts from: a visitor's uploaded one, else the shipped model for the kind."""
        return self.parent or str(resolve_checkpoint(self.dataset))

    def use_parent(self, path) -> dict:
        """Continue from the checkpoint `path` (an uploaded file): CheckpointError unless it is a model of this
        workspace's kind. Returns its metadata."""
        _, meta = load_checkpoint(path)
        if meta["preset"] != self.dataset:
            raise ValueError(f"{Path(path).name} is a {meta['preset']} model; {self.kind} start from a "
                             f"{self.dataset} one")
        self.parent = str(path)
        return meta

    def config(self, **overrides) -> TrainConfig:
        """The run that teaches these classes: from the starting file, its fully connected layers trained with a
        new last layer ("classifier": the conv layers kept; Adam 1e-3, one-cycle, 3 epochs, measured in
        bench/classes.py: a new last layer alone read 3 classes x 12 drawings only 83% right) at a batch of up to
        32 (at least 5 steps an epoch) with the engine's shift augmentation, 20% of each class held out as the
        test."""
        self.check()
        _, meta = load_checkpoint(self.starting_file())
        learn = sum(n - min(n - 1, max(1, round(HELD_OUT * n))) for n in self.counts().values())  # as held_out_split
        settings = dict(dataset=self.dataset, examples=str(self.folder), init=self.starting_file(),
                        tune="classifier",
                        input_size=int(meta["input_size"]), batch_norm=bool(meta.get("batch_norm")),
                        classifier_width=int(meta.get("classifier_width") or 4096), epochs=3, optimizer="adam",
                        lr=1e-3, schedule="onecycle", augment=True, val_fraction=HELD_OUT, dropout=0.5,
                        batch_size=max(2, min(32, learn // 5)), log_every=1, save_state=False)
        settings.update(overrides)
        # the time-lapse (the first held-out example as the run reads it) at the start and every epoch's end only:
        # free there (bench/classes.py, 10x20 drawings, fp32: 16.07 s without, 16.08 s with), while one every step
        # cost 1.4 s more
        steps = settings["epochs"] * math.ceil(learn / settings["batch_size"])
        settings.setdefault("snapshot_every", steps)
        return TrainConfig(**settings)

    def dataset_view(self):
        """The examples as the engine reads them (data.load_examples)."""
        return load_examples(self.folder, self.dataset)
