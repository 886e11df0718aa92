"""Command lines: `python -m alexnet_demo.train`, `.evaluate` and `.push`, all printing the engine's events."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing

from tqdm import tqdm

from .config import RECIPES, TrainConfig, config_fields
from .training import DoneEvent, EpochEvent, FinalTestEvent, StageEvent, StartEvent, StepEvent, train


def _flag_type(f: dataclasses.Field):
    """The argparse type of a TrainConfig field: its annotation with `| None` removed."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0]


def train_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field. A flag not given is absent from the parsed namespace (SUPPRESS), so that
    `--recipe` supplies it and only the flags given override the recipe."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.train",
                                     description="Train an AlexNet preset; writes a checkpoint after every epoch.",
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--recipe", choices=tuple(RECIPES),
                        help="start from a shipped checkpoint's recipe (alexnet_demo.config.RECIPES); flags override")
    for f in config_fields():
        kind = _flag_type(f)
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_)
        else:
            parser.add_argument(flag, type=kind, help=help_)
    parser.add_argument("--resume", help="continue from this training-state file (<out>.state.safetensors)")
    parser.add_argument("--dry-run", action="store_true", help="1 epoch of 1 real step, evaluated on 200 images")
    return parser


def parse_config(argv: list[str]) -> tuple[TrainConfig, dict]:
    """The config a `python -m alexnet_demo.train` command line describes, and its other options
    (resume, dry_run, recipe). ValueError for a field out of range."""
    args = vars(train_parser().parse_args(argv))
    options = {"recipe": args.pop("recipe", None), "resume": args.pop("resume", None),
               "dry_run": args.pop("dry_run", False)}
    settings = {**RECIPES.get(options["recipe"], {}), **args}
    if options["dry_run"]:
        settings.update(epochs=1, max_batches=1, eval_limit=settings.get("eval_limit") or 200)
    return TrainConfig(**settings), options


def train_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config, options = parse_config(argv)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    resume = options["resume"]
    extra_meta = {"command": "python -m alexnet_demo.train " + shlex.join(argv), "recipe": options["recipe"]}
    bar = testing = None
    try:
        for event in train(config, resume=resume, extra_meta=extra_meta):
            if isinstance(event, StageEvent):
                print(event.message, flush=True)
            elif isinstance(event, StartEvent):
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
            elif isinstance(event, FinalTestEvent):
                if testing is None:
                    bar.close()
                    testing = tqdm(total=event.total, desc="Testing", unit="image", dynamic_ncols=True)
                testing.update(event.done - testing.n)
            elif isinstance(event, DoneEvent):
                for progress in (bar, testing):
                    if progress is not None:
                        progress.close()
                summary = {"cancelled": event.cancelled, "test_accuracy": event.test_accuracy,
                           "test_loss": event.test_loss, "train_time_s": round(event.train_time_s, 1),
                           "elapsed_s": round(event.elapsed_s, 1), "checkpoint": event.checkpoint}
                print(json.dumps(summary))
    except (ValueError, OSError, RuntimeError) as e:
        for progress in (bar, testing):
            if progress is not None:
                progress.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint
    from .data import load_dataset
    from .evaluation import confusion_matrix, evaluate, per_class_accuracy
    from .training import pick_device

    parser = argparse.ArgumentParser(prog="python -m alexnet_demo.evaluate",
                                     description="Overall and per-class test accuracy of a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a .safetensors file, or a preset name")
    parser.add_argument("--data-root", default=None, help="else env ALEXNET_DEMO_DATA, else ./data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval-limit", "--limit", type=int, default=None, dest="limit",
                        help="evaluate the first N test images only")
    parser.add_argument("--bf16", action="store_true",
                        help="with bf16 weights (+ channels_last), as the app answers where bf16 measured faster")
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
    if args.bf16:
        from .precision import as_bf16
        model = as_bf16(model)
    result = evaluate(model.to(device), test.to(device), meta["preset"], meta["input_size"],
                      channels_last=device.type != "mps")
    cm = confusion_matrix(test.labels, result["predictions"], len(meta["classes"]))
    per_class = {c: None if acc is None else round(acc, 4)
                 for c, acc in per_class_accuracy(cm, meta["classes"]).items()}
    print(f"{path}: {meta['preset']} at {meta['input_size']} px, {'bf16' if args.bf16 else 'fp32'} weights, "
          f"{len(test)} test images from {test.source}")
    for c, acc in per_class.items():
        print(f"  {c:>12}: " + ("no test image in this slice" if acc is None else f"{acc:.4f}"))
    print(f"  {'overall':>12}: {result['accuracy']:.4f}  (loss {result['loss']:.4f})")
    print(json.dumps({"checkpoint": str(path), "format": "bf16" if args.bf16 else "fp32", "test_images": len(test),
                      "test_accuracy": round(result["accuracy"], 4),
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
