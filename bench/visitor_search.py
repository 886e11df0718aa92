"""Recipe search for the visitor's CPU default ("Watch it learn, on the hardware visitors really get").

Runs one training run in-process through the engine and appends one JSON line per run to --log:
config, test accuracy on the full test set, training seconds, mean images/s, Start->Done seconds,
torch threads and the load average before/after (timings on a shared machine are inflated; accuracy is not).

    OMP_NUM_THREADS=1 python bench/visitor_search.py --log /tmp/vs.jsonl -- \
        --dataset mnist --data-root ../shared/data --subset 10000 --input-size 65 --epochs 1 --schedule onecycle
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from alexnet_demo.cli import parse_config  # noqa: E402
from alexnet_demo.training import DoneEvent, EpochEvent, StartEvent, StepEvent, train  # noqa: E402


def run(flags: list[str]) -> dict:
    config, _ = parse_config(flags)
    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    rates, epochs, curve, row = [], [], [], {}
    for event in train(config):
        if isinstance(event, StartEvent):
            row.update(train_images=event.train_images, eval_images=event.eval_images, steps=event.total_steps)
            t_start = time.perf_counter() - wall  # data load + staging + model build
        elif isinstance(event, StepEvent):
            rates.append(event.images_per_s)
            curve.append((event.step, round(event.train_loss, 3), round(event.train_accuracy, 3)))
        elif isinstance(event, EpochEvent):
            epochs.append(round(event.eval_accuracy, 4))
        elif isinstance(event, DoneEvent):
            done = event
    skip = 1 if len(rates) > 2 else 0  # the first window includes warm-up
    return {**row, "flags": " ".join(flags), "test_accuracy": done.test_accuracy, "epoch_eval": epochs,
            "train_s": round(done.train_time_s, 1), "done_s": round(done.elapsed_s, 1),
            "staging_s": round(t_start, 1),
            "images_per_s": round(sum(rates[skip:]) / max(len(rates[skip:]), 1), 1),
            "threads": torch.get_num_threads(), "curve": curve, "load_before": load_before, "load_after": os.getloadavg()[0]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default="/tmp/visitor_search.jsonl")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- then python -m alexnet_demo.train flags")
    ns = parser.parse_args()
    flags = ns.flags[1:] if ns.flags[:1] == ["--"] else ns.flags
    result = run(flags)
    print(json.dumps(result), flush=True)
    with open(ns.log, "a") as f:
        f.write(json.dumps(result) + "\n")
