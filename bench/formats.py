"""Which number format wins on this CPU, side by side: `python bench/bench.py formats`.

For each shipped checkpoint, the measurement the app makes in its warm-up (precision.choose_format on the 32 probe
images shipped beside it): ms per forward at one input and at 8 at once, fp32 against bf16 weights + channels_last,
and the largest probability change. For each training recipe, the engine's own optimizer step (precision.step_ms)
in fp32 and under bf16 autocast, as images/s. `--tiny`: one small step and a tiny model, for CI.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: bench.py's report and environment
from bench import environment, own_parser, report  # noqa: E402

RECIPES = ("mnist", "mnist_visitor", "cifar10_visitor", "cifar10")  # the shipped runs and the Train tab's defaults


def inference_rows(names) -> list[dict]:
    from alexnet_demo.inference import load_classifier
    rows = []
    for name in names:
        classifier = load_classifier(name)
        choice = classifier.use_best_format()
        fp32, bf16 = choice.fp32_ms or (None, None), choice.bf16_ms or (None, None)
        rows.append({"what": f"{name} forward", "chosen": choice.name, "fp32_one_ms": fp32[0], "bf16_one_ms": bf16[0],
                     "fp32_batch8_ms": fp32[1], "bf16_batch8_ms": bf16[1], "max_probability_change": choice.max_change,
                     "reason": choice.reason})
    return rows


def training_rows(recipes, tiny: bool) -> list[dict]:
    from alexnet_demo import recipe_config
    from alexnet_demo.precision import choose_training_format, step_ms
    rows = []
    for name in recipes:
        config = recipe_config(name)
        if tiny:
            config = replace(config, batch_size=4, classifier_width=64, input_size=max(config.input_size // 3, 65)
                             if config.dataset == "mnist" else 47)
        choice = choose_training_format(config, measure=lambda c: step_ms(c, steps=1 if tiny else 3))
        fp32_ms, bf16_ms = choice.fp32_ms[0], choice.bf16_ms[0]
        rows.append({"what": f"{name} training step", "chosen": choice.name, "input_px": config.input_size,
                     "batch": config.batch_size, "classifier_width": config.classifier_width,
                     "fp32_images_per_s": config.batch_size / fp32_ms * 1e3,
                     "bf16_images_per_s": config.batch_size / bf16_ms * 1e3, "reason": choice.reason})
    return rows


def main(argv=None) -> int:
    parser = own_parser(__doc__, "one tiny training step per recipe; inference as shipped (it is fast)")
    parser.add_argument("--skip-training", action="store_true", help="only the shipped models' forwards")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = inference_rows(("mnist", "cifar10"))
    if not args.skip_training:
        rows += training_rows(RECIPES, args.tiny)
    report("formats", rows, {**environment(torch.device("cpu")), "tiny": args.tiny}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
