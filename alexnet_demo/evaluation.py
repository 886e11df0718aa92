"""Evaluation: loss, accuracy and predictions of a model on a dataset; the confusion matrix and per-class accuracy."""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from .data import Dataset, prepare_batch


def evaluate(model, data: Dataset, preset: str, input_size: int, batch_size: int = 500, amp: bool = False,
             channels_last: bool = True, stop: threading.Event | None = None) -> dict | None:
    """Loss, accuracy and predictions of `model` on `data` (already on the model's device); None if stopped."""
    result = None
    for result in evaluate_batches(model, data, preset, input_size, batch_size, amp, channels_last, stop):
        pass
    return result if isinstance(result, dict) else None


def evaluate_batches(model, data: Dataset, preset: str, input_size: int, batch_size: int = 500, amp: bool = False,
                     channels_last: bool = True, stop: threading.Event | None = None):
    """`evaluate` batch by batch, for a caller that shows progress: yields (images done, images in all) after each
    batch, then the result dict (nothing more if stopped)."""
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, len(data), batch_size):
        if stop is not None and stop.is_set():
            return
        with torch.inference_mode():
            x = prepare_batch(data.images[start:start + batch_size], preset, input_size, channels_last=channels_last)
            x = x.to(next(model.parameters()).dtype)  # a model held in bf16 (the app's answer format) takes bf16 in
            y = data.labels[start:start + batch_size]
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            predictions.append(logits.argmax(1))
        yield min(start + batch_size, len(data)), len(data)
    predictions = torch.cat(predictions)
    accuracy = (predictions == data.labels).float().mean().item()
    yield {"loss": loss_sum / len(data), "accuracy": accuracy, "predictions": predictions}


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts, [true][predicted]."""
    return torch.bincount(labels.cpu() * num_classes + predictions.cpu(), minlength=num_classes ** 2) \
        .view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor, classes) -> dict[str, float | None]:
    """Class -> the fraction of its images predicted right; None for a class with no image in the data (an
    evaluation slice may miss one: that is "not measured", not 0% and not NaN)."""
    totals = confusion.sum(dim=1)
    return {c: (confusion[i, i] / totals[i]).item() if totals[i] > 0 else None for i, c in enumerate(classes)}
