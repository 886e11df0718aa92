"""The one training engine: `train(config)` runs a run in named stages and yields events that the CLI, the app and
the tests consume.

Speed ideas, in the spirit of airbench:
- the whole dataset sits on the training device as uint8 (60,000 MNIST digits are 47 MB);
- resize + random shift/flip + normalize happen per batch on the device in one `grid_sample` (data.prepare_batch),
  not per sample in PIL inside a DataLoader as the write-ups do; the digits' re-drawn copies (`sketch`) are made once,
  cached, and swapped in per batch by one `torch.where`;
- the loss and accuracy stay on the device and are read back every `log_every` steps, not every step;
- channels-last memory format and bf16 autocast on CUDA; a fused optimizer step on CUDA.
"""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from . import distributed
from .checkpoints import load_checkpoint, round_to_float16_, save_checkpoint, save_state, state_path
from .config import TrainConfig
from .data import Dataset, prepare_batch
from .evaluation import confusion_matrix, evaluate, evaluate_batches, per_class_accuracy
from .events import (DoneEvent, EpochEvent, FinalTestEvent, SnapshotEvent, StageEvent, StartEvent, StepEvent,
                     TrainingError)
from .models import PRESETS
from .photo_augment import OUTLIER_WEIGHT, outlier_images, outlier_loss, photo_batch
from .snapshots import take_snapshot
from .staging import (Run, _stratified_take, device_name, frozen_modules, pick_device, restore, stage,  # noqa: F401
                      staging_message)

# ---- one step ----------------------------------------------------------------------------------------------


DISTILL_TEMPERATURE = 2.0  # softens both distributions in the distillation term (Hinton et al. 2015 use 1 to 20)


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, t: float = DISTILL_TEMPERATURE) -> torch.Tensor:
    """KL(teacher || student) of the probabilities at temperature `t`, mean over the batch, times t² so that its
    gradients keep their size whatever `t` (Hinton et al. 2015); 0 when the logits agree."""
    return F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1), log_target=True,
                    reduction="batchmean") * t * t


def train_step(model, optimizer, x, y, config: TrainConfig, outliers: torch.Tensor | None = None,
               teacher_logits: torch.Tensor | None = None):
    """One optimizer step; returns the loss and the in-class logits still on the device (no host sync). `outliers`
    (normalized like x) go through the same forward and are pulled towards equal probabilities (outlier exposure);
    with `teacher_logits` (N, classes) the in-class logits are also pulled towards those (config.distill)."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=config.amp):
        logits = model(x if outliers is None else torch.cat([x, outliers])).float()
        logits, outlier_logits = logits[:len(y)], logits[len(y):]
        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        if outliers is not None:
            loss = loss + OUTLIER_WEIGHT * outlier_loss(outlier_logits)
        if teacher_logits is not None:
            loss = loss + config.distill * distill_loss(logits, teacher_logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


# ---- the run, stage by stage --------------------------------------------------------------------------------


def snapshot(run: Run) -> SnapshotEvent:
    return SnapshotEvent(run.step, run.step / run.steps_per_epoch, **take_snapshot(run.model, run.probe, run.classes))


def train_epoch(run: Run, stop: threading.Event | None) -> Iterator[StepEvent | SnapshotEvent]:
    """One pass over the shuffled training images, a StepEvent every `log_every` steps (one host sync each) and
    a SnapshotEvent every `snapshot_every` steps and after the last. Under torchrun each rank trains on its own
    shard, batch_size // world size images a step, and DDP averages the gradients."""
    config, model, world = run.config, run.model, run.world
    model.train()
    for layer in frozen_modules(model, config.tune):  # frozen BatchNorms keep the starting file's statistics
        layer.eval()
    order = torch.randperm(len(run.train_data), generator=run.generator, device=run.device)
    batch, noise = config.batch_size, run.generator  # one process: one generator for order and augmentation
    if world.size > 1:  # a strided shard: at step i the ranks' shards together are the one-process batch i
        batch, order = config.batch_size // world.size, order[world.rank::world.size]
        noise = distributed.rank_noise(config.seed, run.step // run.steps_per_epoch, world.rank, run.device)
    window_loss = torch.zeros((), device=run.device)
    window_correct = torch.zeros((), device=run.device, dtype=torch.int64)
    window_steps, window_start = 0, time.perf_counter()
    for i in range(run.steps_per_epoch):
        if world.size == 1 and _halt(run, *_halt_reasons(run, stop)):  # ranks agree at each window's end instead
            return
        index = order[i * batch:(i + 1) * batch]
        images = run.train_data.images[index]
        if config.sketch > 0:  # a share of the digits as a visitor's brush drew them
            chosen = torch.rand(len(index), generator=noise, device=run.device) < config.sketch
            images = torch.where(chosen.view(-1, 1, 1, 1), run.train_data.drawn[index], images)
        clean = prepare_batch(images, config.preset, config.input_size, augment=config.augment,
                              generator=noise, channels_last=config.channels_last)
        x = photo_like(clean, images, config, noise)  # a new tensor when any image is re-photographed
        teacher_logits = teach(run, clean)
        outliers = None
        if config.outliers > 0:  # outlier exposure: framed as the training photos are
            extra = outlier_images(run.train_data.images, max(1, round(config.outliers * len(index))), noise)
            outliers = photo_like(prepare_batch(extra, config.preset, config.input_size, augment=config.augment,
                                                generator=noise, channels_last=config.channels_last),
                                  extra, config, noise)
        y = run.train_data.labels[index]
        try:
            loss, logits = train_step(run.net, run.optimizer, x, y, config, outliers, teacher_logits)
        except torch.OutOfMemoryError as e:
            raise TrainingError(f"out of memory on {device_name(run.device)} at batch size {config.batch_size}, "
                                f"input {config.input_size} px: use a smaller batch or input size "
                                f"({str(e).splitlines()[0]})") from None
        run.schedule.after_step()
        run.step += 1
        window_steps += 1
        window_loss += loss
        window_correct += (logits.argmax(1) == y).sum()
        every = config.snapshot_every
        if every and world.main and (run.step % every == 0 or i == run.steps_per_epoch - 1):
            event = snapshot(run)  # on the clock: recording is part of what training costs
            paused = time.perf_counter()
            yield event
            window_start += time.perf_counter() - paused  # off the clock: what the consumer does with it
        if window_steps == config.log_every or i == run.steps_per_epoch - 1:
            seen, halt = window_steps * config.batch_size, False  # images of every rank
            if world.size == 1:
                mean_loss, correct = window_loss.item() / window_steps, window_correct.item()  # the sync
            else:  # every rank's sums, and whether any rank must stop: one collective, one sync
                flags = torch.tensor(_halt_reasons(run, stop), dtype=torch.float32, device=run.device)
                totals = distributed.sum_across(torch.cat([window_loss.view(1), window_correct.view(1).float(), flags]))
                total_loss, correct, stopped, timed_out = totals.tolist()
                mean_loss, halt = total_loss / (window_steps * world.size), _halt(run, stopped > 0, timed_out > 0)
            now = time.perf_counter()
            run.train_time += now - window_start
            done_this_run = run.step - run.start_epoch * run.steps_per_epoch
            yield StepEvent(run.step, run.step / run.steps_per_epoch, mean_loss, correct / seen,
                            seen / (now - window_start), run.optimizer.param_groups[0]["lr"], now - run.started,
                            (run.total_steps - run.step) * run.train_time / max(done_this_run, 1))
            if halt:
                return
            window_loss.zero_()
            window_correct.zero_()
            window_steps, window_start = 0, time.perf_counter()


def teach(run: Run, clean: torch.Tensor) -> torch.Tensor | None:
    """The teacher's logits (config.distill) for the batch as it is, before any image is re-photographed: the student
    learns to answer a visitor's photo of an image as the teacher answers the image itself. None without a teacher."""
    if run.teacher is None:
        return None
    with torch.no_grad(), torch.autocast(device_type=clean.device.type, dtype=torch.bfloat16, enabled=run.config.amp):
        return run.teacher(clean).float()


def photo_like(x: torch.Tensor, images: torch.Tensor, config: TrainConfig, generator) -> torch.Tensor:
    """The prepared batch `x` with a `config.photo` share of its images (uint8 `images`) made again as a visitor's
    photo might look (photo_augment.photo_batch)."""
    if config.photo <= 0:
        return x
    chosen = (torch.rand(len(images), generator=generator, device=images.device) < config.photo).nonzero().flatten()
    if len(chosen) == 0:
        return x
    x = x.clone()
    x[chosen] = photo_batch(images[chosen], config.preset, config.input_size, generator,
                            config.channels_last).to(x.dtype)
    return x


def _halt_reasons(run: Run, stop: threading.Event | None) -> tuple[bool, bool]:
    """(`stop` is set, config.time_limit_s has passed): the reasons to end the run before its next step."""
    limit = run.config.time_limit_s
    return stop is not None and stop.is_set(), limit is not None and time.perf_counter() - run.started >= limit


def _halt(run: Run, stopped: bool, timed_out: bool) -> bool:
    run.cancelled, run.timed_out = stopped or timed_out, timed_out and not stopped  # a visitor's stop wins
    return run.cancelled


def end_epoch(run: Run, epoch: int, stop: threading.Event | None) -> EpochEvent | None:
    """Evaluate, step a plateau schedule, write the checkpoint (and the resume state); None if stopped. Under
    torchrun rank 0 alone evaluates and writes; the others wait for its figures."""
    config, world = run.config, run.world
    result = evaluate(run.model, run.eval_data, config.preset, config.input_size, amp=config.amp,
                      channels_last=config.channels_last, stop=stop) if world.main else None
    if world.size > 1:
        result = distributed.share_evaluation(result, run.device)
    if result is None:
        run.cancelled = True
        return None
    run.last_eval = result
    run.schedule.after_epoch(result["loss"])
    run.history.append({"epoch": epoch + 1, "eval_loss": result["loss"], "eval_accuracy": result["accuracy"]})
    if config.out and world.main:
        meta = checkpoint_meta(run, eval_split=run.eval_split, eval_accuracy=result["accuracy"])
        run.checkpoint = str(save_checkpoint(config.out, run.model, meta))
        if config.save_state:
            save_state(state_path(config.out), run.model, run.optimizer, run.generator,
                       {"epoch": epoch + 1, "history": run.history, "scheduler": run.schedule.state_dict()})
    return EpochEvent(epoch + 1, run.eval_split, result["loss"], result["accuracy"],
                      time.perf_counter() - run.started, run.checkpoint)


def finish(run: Run, stop: threading.Event | None) -> Iterator[FinalTestEvent | DoneEvent]:
    """The final test (of the float16 weights when a file is written), a FinalTestEvent after each of its batches,
    then the summary and the model back on the CPU (DoneEvent). A run the time limit ended is tested as it is (the
    visitor wants their number); a stopped one is not. Under torchrun rank 0 alone tests and writes; the others
    end here."""
    config, final = run.config, None
    if run.world.main and (not run.cancelled or run.timed_out):
        if config.interpolate < 1:
            interpolate_(run.model, config.init, config.interpolate)
        if config.out:  # the final figure is of the weights as shipped: float16, upcast on loading
            round_to_float16_(run.model)
        reuse = run.eval_split == "test" and run.last_eval is not None and not config.out and not run.timed_out
        if reuse:
            final = run.last_eval
        else:
            yield FinalTestEvent(0, len(run.test))
            for final in evaluate_batches(run.model, run.test.to(run.device), config.preset, config.input_size,
                                          amp=config.amp, channels_last=config.channels_last, stop=stop):
                if not isinstance(final, dict):
                    yield FinalTestEvent(*final)
            final = final if isinstance(final, dict) else None
    meta = checkpoint_meta(run, **({"timed_out": True, "steps_done": run.step} if run.timed_out else {}))
    if final is not None:
        meta["test_accuracy"] = final["accuracy"]
        if config.out:  # the finished file records its test accuracy
            run.checkpoint = str(save_checkpoint(config.out, run.model, meta))
    # every layer differentiable again, as a loaded file's: explanations take gradients through the frozen ones too
    model = run.model.to("cpu", memory_format=torch.contiguous_format).eval().requires_grad_(True)
    yield DoneEvent(run.cancelled or final is None, final and final["loss"], final and final["accuracy"],
                    checkpoint=run.checkpoint, elapsed_s=time.perf_counter() - run.started,
                    train_time_s=run.train_time, model=model, meta=meta, timed_out=run.timed_out,
                    **_summarize(final, run.test, run.classes))


@torch.no_grad()
def interpolate_(model: torch.nn.Module, init: str, share: float) -> None:
    """Move `model`'s floating weights and buffers back towards the `init` file's, in place: init + share * (model -
    init) (config.interpolate)."""
    start = load_checkpoint(init)[0].state_dict()
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(start[name].to(tensor.device, tensor.dtype).lerp(tensor, share))


def run_stages(run: Run, stop: threading.Event | None) -> Iterator:
    """A staged run's events, start to finish (every rank produces them; `train` passes rank 0's on)."""
    yield StartEvent(str(run.device), run.hardware, len(run.train_data), len(run.eval_data), run.eval_split,
                     run.steps_per_epoch, run.total_steps, run.start_epoch)
    if run.config.snapshot_every and run.world.main:
        yield snapshot(run)  # before training: the untrained (or resumed) model
    for epoch in range(run.start_epoch, run.config.epochs):
        yield from train_epoch(run, stop)
        event = None if run.cancelled else end_epoch(run, epoch, stop)
        if event is None:
            break
        yield event
    yield from finish(run, stop)


def train(config: TrainConfig, stop: threading.Event | None = None, resume: str | Path | None = None,
          extra_meta: dict | None = None, probe: torch.Tensor | None = None
          ) -> Iterator[StageEvent | StartEvent | StepEvent | SnapshotEvent | EpochEvent | FinalTestEvent | DoneEvent]:
    """Run `config`, yielding a StageEvent (loading or downloading the data), a StartEvent, StepEvents every
    `log_every` steps, an EpochEvent per epoch, FinalTestEvents as the final test goes (one per batch of 500
    test images) and a final DoneEvent. Setting `stop` ends the run cleanly between
    steps, as does config.time_limit_s (s from the call). `resume` is a training-state file. With
    config.snapshot_every, SnapshotEvents show `probe` (uint8 (C, h, w) at the dataset's size; None: the first
    test image) at step 0, every `snapshot_every` steps and at every epoch's end.

    Under torchrun (WORLD_SIZE > 1) every process trains its shard with DDP and rank 0 alone yields events,
    evaluates and writes files; the other ranks' generators yield nothing."""
    config.validate()
    main = distributed.world_from_env().main
    if main:
        yield StageEvent(staging_message(config))
    run = events = None
    try:
        run = stage(config, extra_meta, probe)
        if resume is not None:
            restore(run, resume)
        events = run_stages(run, stop)
        for event in events:
            if main:
                yield event
    finally:  # on cancel (GeneratorExit), error or completion: drop device tensors so the memory is released
        device = run and run.device
        del run, events
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()
        distributed.teardown()


# ---- what the run records -----------------------------------------------------------------------------------


def checkpoint_meta(run: Run, **extra) -> dict:
    """A checkpoint's metadata: what rebuilds its model (preset, input size, BatchNorm, classifier width, classes,
    normalization),
    the config, the history so far, and where and when it was trained."""
    config, p = run.config, PRESETS[run.config.preset]
    return {
        "preset": config.preset, "dataset": config.dataset, "input_size": config.input_size,
        "batch_norm": config.batch_norm, "classifier_width": config.classifier_width,
        "classes": list(run.classes), "mean": list(p.mean), "std": list(p.std), "config": asdict(config),
        "hardware": run.hardware, "torch": torch.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "epochs_done": len(run.history),
        "train_time_s": round(run.train_time, 1), "history": run.history, **extra, **run.extra_meta,
    }


def _summarize(final: dict | None, test: Dataset, classes) -> dict:
    if final is None:
        return {"per_class_accuracy": {}, "confusion": [], "mistakes": []}
    predictions, labels = final["predictions"].cpu(), test.labels.cpu()
    cm = confusion_matrix(labels, predictions, len(classes))
    wrong = (predictions != labels).nonzero().flatten()[:24]
    mistakes = [(test.images[i].cpu(), classes[labels[i]], classes[predictions[i]]) for i in wrong.tolist()]
    return {"per_class_accuracy": per_class_accuracy(cm, classes), "confusion": cm.tolist(), "mistakes": mistakes}
