"""What time-lapse snapshots cost: `python bench/timelapse.py` trains the same run with and without them, side by side.

Visitor settings: MNIST at 65 px, batch 128, a snapshot every 10 steps. The two runs advance in lockstep in this one
process, a window of 10 steps each in turn (who goes first alternates), so that a busy shared machine's load falls
on both alike; images/s are the engine's own StepEvent figures (each window's optimizer steps and snapshot capture,
never staging, evaluation, or what the consumer does with an event). The first window (warm-up) is left out.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import environment, own_parser, report  # noqa: E402  (bench.py also puts the repo root on sys.path)

from alexnet_demo import TrainConfig  # noqa: E402
from alexnet_demo.training import SnapshotEvent, StepEvent, pick_device, train  # noqa: E402


def next_window(events, counts: dict, name: str) -> StepEvent:
    """Advance a run to its next StepEvent, counting the snapshots on the way."""
    for event in events:
        counts[name] += isinstance(event, SnapshotEvent)
        if isinstance(event, StepEvent):
            return event
    raise RuntimeError(f"the {name} run ended before its windows did")


def run(args) -> Path:
    steps, batch, every = (6, 16, 2) if args.tiny else (args.steps, args.batch_size, args.snapshot_every)
    base = dict(dataset="mnist", input_size=65, batch_size=batch, epochs=1, subset=steps * batch, max_batches=steps,
                log_every=every, eval_limit=batch, data_root=args.data_root)
    runs = {"plain": train(TrainConfig(**base)), "snapshots": train(TrainConfig(**base, snapshot_every=every))}
    counts, rates = {"plain": 0, "snapshots": 0}, {"plain": [], "snapshots": []}
    for window in range(steps // every):
        for name in (("plain", "snapshots") if window % 2 else ("snapshots", "plain")):
            event = next_window(runs[name], counts, name)
            if window > 0:
                rates[name].append(event.images_per_s)
    for events in runs.values():
        events.close()  # no evaluation: only the training windows are measured
    ratios = [s / p for s, p in zip(rates["snapshots"], rates["plain"])]
    plain, with_snapshots = statistics.median(rates["plain"]), statistics.median(rates["snapshots"])
    rows = [{"run": "plain", "images_per_s": plain, "snapshots": counts["plain"]},
            {"run": f"snapshot every {every} steps", "images_per_s": with_snapshots, "snapshots": counts["snapshots"],
             "overhead": 1 - statistics.median(ratios)}]
    return report("timelapse", rows, {
        **environment(pick_device()), "steps": steps, "batch_size": batch, "input_px": 65, "window_steps": every,
        "windows_images_per_s": rates, "overhead_per_window": [1 - r for r in ratios],
        "on_the_clock": "each window's optimizer steps and snapshot capture (StepEvent.images_per_s); medians over "
                        "the windows after the first; overhead: 1 - the median of the windows' paired ratios"},
        args.out)


def main(argv=None) -> int:
    parser = own_parser(__doc__, tiny="tiny sizes: exercise the code path only")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--snapshot-every", type=int, default=10)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
