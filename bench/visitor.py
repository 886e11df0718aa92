"""A visitor's default run, as the Train tab runs it: `python bench/bench.py visitor --data-root ../shared/data`.

For each dataset, the form's defaults (alexnet_demo/ui/training.py `_form_defaults`) go through the tab's own
callback, `train_run`, on the current device; measured: Start -> Done wall time as the visitor waits for it, the
time to the first plotted training point, and the final test accuracy on all 10,000 test images (read from the
finished model's metadata, not from the page's text). `--tiny` runs a sliver of it for CI.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: bench.py's report and environment
from bench import environment, own_parser, report  # noqa: E402


def first_point(losses) -> bool:
    """Whether a loss frame the tab sent has a plotted training value yet (its first frame seeds empty series)."""
    return hasattr(losses, "dropna") and len(losses.dropna(subset=["value"])) > 0


def visitor_run(dataset: str, form: dict) -> dict:
    from alexnet_demo.ui import training as train_tab
    from alexnet_demo.ui.runs import OUTPUTS

    start, first, last = time.perf_counter(), None, None
    for outputs in train_tab.train_run(dataset=dataset, **form):
        values = dict(zip(OUTPUTS, outputs))
        if first is None and first_point(values["losses"]):
            first = time.perf_counter() - start
        last = values
    done = time.perf_counter() - start
    trained = last["trained"]
    accuracy = trained.meta.get("test_accuracy") if trained is not None else None
    return {"dataset": dataset, "start_to_done_s": done, "first_point_s": first, "test_accuracy": accuracy,
            **form}


def run(args) -> Path:
    from alexnet_demo.training import pick_device
    from alexnet_demo.ui import formats, training as train_tab

    if args.data_root:
        os.environ["ALEXNET_DEMO_DATA"] = str(args.data_root)
    # the form as it stands once the visitor has picked the dataset (which measures whether bf16 autocast pays)
    forms = {dataset: {**train_tab._form_defaults(dataset), "augment": False,
                       "amp": formats.training_format(dataset)[0]} for dataset in args.datasets}
    if args.tiny:
        for form in forms.values():
            form.update(epochs=1, subset=640)
    rows = [visitor_run(dataset, form) for dataset, form in forms.items()]
    targets = {"mnist": (45, 0.98), "cifar10": (90, 0.60)}  # the issues': Start -> Done s, test accuracy
    for row in rows:
        limit, accuracy = targets[row["dataset"]]
        row["meets_target"] = row["start_to_done_s"] <= limit and (row["test_accuracy"] or 0) >= accuracy
        row["target"] = f"<= {limit} s and >= {accuracy:.1%}"
    return report("visitor", rows, {**environment(pick_device()), "forms": forms,
                                    "on_the_clock": "train_run from its call to its last output: data staging, "
                                                    "training, per-epoch validation, the final 10,000-image test, "
                                                    "the result's figures"}, args.out)


def main(argv=None) -> int:
    parser = own_parser(__doc__, tiny="1 epoch of 640 images: the code path only")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], choices=["mnist", "cifar10"])
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
