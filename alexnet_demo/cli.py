"""Command lines: `python -m alexnet_demo.train`, `.evaluate` and `.push`, all printing the engine's events."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing

from tqdm import tqdm

from .training import DoneEvent, EpochEvent, StartEvent, StepEvent, TrainConfig, config_fields, train


def _flag_type(f: dataclasses.Field):
    """The argparse type of a TrainConfig field: its annotation with `| None` removed."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0]


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.train",
                                     description="Train an AlexNet preset; writes a checkpoint after every epoch.")
    for f in config_fields():
        kind = _flag_type(f)
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=kind, default=f.default, help=f.metadata["help"])
    parser.add_argument("--resume", help="continue from this training-state file (<out>.state.safetensors)")
    parser.add_argument("--dry-run", action="store_true", help="one real step per epoch, 1 epoch, small eval")
    return parser


def train_main(argv: list[str] | None = None) -> int:
    args = vars(train_parser().parse_args(argv))
    resume, dry_run = args.pop("resume"), args.pop("dry_run")
    if dry_run:
        args.update(epochs=1, max_batches=1, eval_limit=args["eval_limit"] or 200)
    try:
        config = TrainConfig(**args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "python -m alexnet_demo.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    bar = None
    try:
        for event in train(config, resume=resume, extra_meta={"command": command}):
            if isinstance(event, StartEvent):
                print(f"{event.device_name}: {event.train_images} training images, {event.eval_images} "
                      f"{event.eval_split} images, {event.total_steps} steps", flush=True)
                bar = tqdm(total=event.total_steps, initial=event.start_epoch * event.steps_per_epoch,
                           unit="step", dynamic_ncols=True)
            elif isinstance(event, StepEvent):
                bar.update(event.step - bar.n)
                bar.set_postfix(loss=f"{event.train_loss:.4f}", acc=f"{event.train_accuracy:.3f}",
                                images_per_s=f"{event.images_per_s:.0f}", lr=f"{event.lr:.2e}")
            elif isinstance(event, EpochEvent):
                bar.write(f"epoch {event.epoch}: {event.eval_split} loss {event.eval_loss:.4f} accuracy "
                          f"{event.eval_accuracy:.4f} ({event.elapsed_s:.0f} s) -> {event.checkpoint}")
            elif isinstance(event, DoneEvent):
                bar.close()
                summary = {"cancelled": event.cancelled, "test_accuracy": event.test_accuracy,
                           "test_loss": event.test_loss, "train_time_s": round(event.train_time_s, 1),
                           "elapsed_s": round(event.elapsed_s, 1), "checkpoint": event.checkpoint}
                print(json.dumps(summary))
    except (ValueError, OSError, RuntimeError) as e:
        if bar is not None:
            bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint
    from .data import load_dataset
    from .training import confusion_matrix, evaluate, pick_device

    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.evaluate",
                                     description="Overall and per-class test accuracy of a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a .safetensors file, or a preset name")
    parser.add_argument("--data-root", default=None, help="else env ALEXNET_DEMO_DATA, else ./data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N test images only")
    args = parser.parse_args(argv)
    try:
        path = resolve_checkpoint(args.checkpoint)
        model, meta = load_checkpoint(path)
        test = load_dataset(meta["dataset"], "test", args.data_root)
    except (CheckpointError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.limit:
        test = test.subset(slice(0, args.limit))
    device = pick_device(args.device)
    result = evaluate(model.to(device), test.to(device), meta["preset"], meta["input_size"],
                      channels_last=device.type != "mps")
    cm = confusion_matrix(test.labels, result["predictions"], len(meta["classes"]))
    per_class = {c: round((cm[i, i] / cm[i].sum()).item(), 4) for i, c in enumerate(meta["classes"])}
    print(f"{path}: {meta['preset']} at {meta['input_size']} px, {len(test)} test images from {test.source}")
    for c, acc in per_class.items():
        print(f"  {c:>12}: {acc:.4f}")
    print(f"  {'overall':>12}: {result['accuracy']:.4f}  (loss {result['loss']:.4f})")
    print(json.dumps({"checkpoint": str(path), "test_images": len(test), "test_accuracy": round(result["accuracy"], 4),
                      "test_loss": round(result["loss"], 4), "per_class_accuracy": per_class}))
    return 0


def push_main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError, push_checkpoint

    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.push",
                                     description="Upload a checkpoint and its model card to the Hugging Face Hub "
                                                 "(token from env HF_TOKEN).")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--repo-id", required=True, help="owner/name of the Hub model repo")
    args = parser.parse_args(argv)
    try:
        print(push_checkpoint(args.checkpoint, args.repo_id))
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
