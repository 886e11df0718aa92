"""How well CIFAR-10 checkpoints read photos as visitors take them, side by side in one run: the images as they are,
and the same split's images re-photographed (photos.in_class: upscaled, framed off-centre, rotated, recoloured,
blurred, JPEG) read as the Photo tab reads them (the centre square) and with the logits averaged over openset.views'
6 framings (test-time augmentation).

    python bench/bench.py photos checkpoints/cifar10.safetensors --baseline runs/cifar10-base.safetensors \
        --data-root ../shared/data
    python bench/bench.py photos runs/cifar10-photos-full.safetensors --split val --interpolate-from \
        runs/cifar10-base.safetensors --shares 0.3,0.5,0.7 --data-root ../shared/data

`--split val` measures on the 2,500 training images the shipped file never trained on (its val_fraction 0.05,
seed 0: what a fine-tune of it with the same split holds out too), so that a choice made on it (`--shares`: the
checkpoint written that share of the way from `--interpolate-from`'s weights, WiSE-FT, as TrainConfig.interpolate
writes it; give it a run's trained weights, `--interpolate 1`) leaves the test set for the figures. Weights are
rounded to float16 as a checkpoint stores them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import environment, own_parser, report  # noqa: E402

VAL_FRACTION, VAL_SEED = 0.05, 0  # the shipped cifar10.safetensors' held-out split (its metadata)


def images_of(split: str, data_root, tiny: bool):
    """The CIFAR-10 images (a data.Dataset) of `split`: "test" (10,000) or "val" (the 2,500 held-out training
    images); a few hundred with `tiny`."""
    from alexnet_demo.data import load_dataset, stratified_split
    if split == "test":
        data = load_dataset("cifar10", "test", data_root)
    else:
        train = load_dataset("cifar10", "train", data_root)
        data = train.subset(stratified_split(train.labels, VAL_FRACTION, VAL_SEED)[1])
    return data.subset(torch.arange(0, len(data), 25)) if tiny else data


@torch.inference_mode()
def read(model, views: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> tuple[float, float]:
    """(accuracy on the centre square, accuracy with the logits averaged over the framings) for uint8
    (N, VIEWS, 3, 32, 32) photos; view 0 is the centre square the Photo tab reads."""
    from alexnet_demo.data import prepare_batch
    model.eval()
    n, v = views.shape[:2]
    flat = views.flatten(0, 1)
    logits = torch.cat([model(prepare_batch(flat[s:s + batch], "cifar10", 50)) for s in range(0, len(flat), batch)])
    logits = logits.view(n, v, -1)
    return ((logits[:, 0].argmax(1) == labels).float().mean().item(),
            (logits.mean(1).argmax(1) == labels).float().mean().item())


def measure(name: str, model, data, views, labels) -> dict:
    from alexnet_demo.evaluation import evaluate
    centre, framings = read(model, views, labels)
    return {"checkpoint": name, "as_they_are": evaluate(model, data, "cifar10", 50)["accuracy"],
            "rephotographed_centre": centre, "rephotographed_6_framings": framings}


def run(args) -> Path:
    from alexnet_demo import openset, photos
    from alexnet_demo.checkpoints import load_checkpoint, round_to_float16_
    from alexnet_demo.training import interpolate_
    torch.manual_seed(0)
    data = images_of(args.split, args.data_root, args.tiny)
    count = min(len(data), 200 if args.tiny else args.count) // 10 * 10
    shots = photos.in_class(data.images.numpy(), data.labels.numpy(), count, seed=args.seed)
    views = openset.view_batch([p.image for p in shots])
    labels = torch.tensor([p.label for p in shots])
    print(f"{len(data)} {args.split} images as they are, {len(shots)} of them re-photographed", flush=True)
    rows = []
    for path in [*args.checkpoints, *([args.baseline] if args.baseline else [])]:
        model, _ = load_checkpoint(path)
        rows.append(measure(Path(path).name + (" (baseline)" if path == args.baseline else ""), model, data, views,
                            labels))
        print(rows[-1], flush=True)
        for share in (args.shares if args.interpolate_from and path != args.baseline else []):
            model, _ = load_checkpoint(path)
            interpolate_(model, args.interpolate_from, share)
            round_to_float16_(model)  # as the checkpoint written at that share stores it
            rows.append(measure(f"{Path(path).name} at share {share:g} from {Path(args.interpolate_from).name}",
                                model, data, views, labels))
            print(rows[-1], flush=True)
    meta = {**environment(torch.device("cpu")), "split": args.split, "images": len(data),
            "rephotographed": len(shots), "seed": args.seed, "command": "python bench/bench.py photos "
            + " ".join(sys.argv[2:] if sys.argv[1:2] == ["photos"] else sys.argv[1:])}
    return report("photos" + ("_tiny" if args.tiny else ""), rows, meta, args.out)


def main(argv=None) -> int:
    parser = own_parser(__doc__, "a few hundred images, for tests")
    parser.add_argument("checkpoints", nargs="+", help="CIFAR-10 .safetensors files")
    parser.add_argument("--baseline", help="a checkpoint to measure side by side (the shipped one)")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--count", type=int, default=2000, help="images re-photographed (the same number a class)")
    parser.add_argument("--seed", type=int, default=0, help="of the re-photographing")
    parser.add_argument("--interpolate-from", help="the file each checkpoint was fine-tuned from: also measure it "
                                                   "written each of --shares of the way from that file's weights")
    parser.add_argument("--shares", type=lambda s: [float(x) for x in s.split(",")], default=[0.3, 0.5, 0.7])
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
