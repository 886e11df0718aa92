"""Photos of other things, and the ten classes re-photographed: `python bench/bench.py openset [--baseline FILE]`.

Builds the evaluation photos (alexnet_demo/photos.py): CIFAR-10 test images re-photographed (in class) and photos of
other things (package pictures, faces, text, patterns, noise, MNIST digits on paper, house numbers). For each
checkpoint, side by side in one run:
- the accuracy on the re-photographed test images, as the Photo tab reads them (the centre square) and averaged
  over the open-set rule's views;
- each out-of-distribution score's AUROC (in class against out of class): top probability and energy (of the centre
  square, and of the views' mean logits), Mahalanobis distance on pool5 (the centre square, the views' mean), its
  class means and covariance from training images re-photographed (`--fit-on photos`) or as they are
  (`--fit-on clean`), both reported;
- the chosen score's threshold, set on re-photographed *training* images (the half not used for the class means) so
  that --none-rate of them would be called "none of the ten", and at it the rates on the test photos: in-class photos
  called "none", out-of-class photos given a class (overall and per family).
`--write-stats` writes the first checkpoint's class means, covariance and threshold beside it
(checkpoints/cifar10.openset.safetensors), which the Photo tab uses.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: bench.py's report and environment
from bench import RESULTS, ROOT, environment, own_parser, report  # noqa: E402

SHIPPED = ROOT / "checkpoints" / "cifar10.safetensors"
CHOSEN = "mahalanobis, views"  # the score the app uses (openset.OpenSet)


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an out-of-class photo scores higher than an in-class one), ties half (the Mann-Whitney U statistic)."""
    scores = np.concatenate([inside, outside])
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[len(inside):].sum() - len(outside) * (len(outside) + 1) / 2) / (len(inside) * len(outside)))


def all_views(photos) -> torch.Tensor:
    """uint8 (N, VIEWS, 3, 32, 32) for a list of PIL images."""
    from alexnet_demo.openset import views
    return torch.from_numpy(np.stack([views(p) for p in photos])).permute(0, 1, 4, 2, 3).contiguous()


def outputs(model, stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, V, 256), logits (N, V, 10)) for uint8 (N, V, 3, 32, 32)."""
    from alexnet_demo.openset import features_and_logits
    n, v = stacked.shape[:2]
    feats, logits = features_and_logits(model, stacked.flatten(0, 1))
    return feats.view(n, v, -1), logits.view(n, v, -1)


def scores(feats, logits, means, precision) -> dict[str, np.ndarray]:
    """Each score (higher: more likely none of the ten) for every photo."""
    from alexnet_demo.openset import mahalanobis
    centre, mean_logits = logits[:, 0], logits.mean(1)
    return {
        "top probability, centre": -centre.softmax(1).max(1).values.numpy(),
        "energy, centre": -centre.logsumexp(1).numpy(),
        "top probability, views": -logits.softmax(2).mean(1).max(1).values.numpy(),
        "energy, views": -mean_logits.logsumexp(1).numpy(),
        "mahalanobis, centre": mahalanobis(feats[:, 0], means, precision).numpy(),
        "mahalanobis, views": mahalanobis(feats.mean(1), means, precision).numpy(),
    }


def run(args) -> Path:
    from alexnet_demo import openset, photos
    from alexnet_demo.checkpoints import load_checkpoint, sha256_of
    from alexnet_demo.data import load_dataset
    from alexnet_demo.training import device_name

    torch.manual_seed(0)
    train, test = load_dataset("cifar10", "train", args.data_root), load_dataset("cifar10", "test", args.data_root)
    try:
        digits = load_dataset("mnist", "test", args.data_root).images[:, 0].numpy()
    except Exception as e:  # noqa: BLE001 - the family is left out, and said so
        print(f"MNIST not found ({type(e).__name__}): the 'mnist digits' family is left out")
        digits = None
    in_count, per_family, per_class = (50, 4, 20) if args.tiny else (args.in_count, args.per_family, args.fit_per_class)
    # class means from the first half of each class's training images; the threshold from the second half
    members = [torch.nonzero(train.labels == c).flatten() for c in range(10)]
    fit_index = torch.cat([m[:per_class] for m in members])
    held = torch.cat([m[len(m) // 2:] for m in members])
    started = time.perf_counter()
    fit_views = all_views([train.images[i].permute(1, 2, 0).numpy() for i in fit_index.tolist()])
    fit_photos = photos.in_class(train.images[fit_index].numpy(), train.labels[fit_index].numpy(), len(fit_index),
                                 seed=2)  # the same training images re-photographed
    fit_photo_views = all_views([p.image for p in fit_photos])
    calibration = photos.in_class(train.images[held].numpy(), train.labels[held].numpy(), in_count, seed=1)
    inside = photos.in_class(test.images.numpy(), test.labels.numpy(), in_count, seed=0)
    outside = photos.out_of_class(per_family, digits, seed=0)
    calibration_views, inside_views = all_views([p.image for p in calibration]), all_views([p.image for p in inside])
    outside_views = all_views([p.image for p in outside])
    print(f"{len(fit_index)} training images for the class means, {len(calibration)} re-photographed training images "
          f"for the threshold, {len(inside)} re-photographed test images, {len(outside)} out-of-class photos "
          f"({time.perf_counter() - started:.0f} s to make)", flush=True)
    labels = torch.tensor([p.label for p in inside])
    families = np.array([p.family for p in outside])
    rows, written = [], None
    for index, path in enumerate(args.checkpoints):
        model, meta = load_checkpoint(path)
        name = Path(path).name + (" (baseline)" if path == args.baseline else "")
        feats, _ = outputs(model, fit_views)
        means, precision = openset.fit(feats.mean(1), train.labels[fit_index])
        photo_feats, _ = outputs(model, fit_photo_views)
        fitted = {"clean": (means, precision),
                  "photos": openset.fit(photo_feats.mean(1), torch.tensor([p.label for p in fit_photos]))}
        means, precision = fitted[args.fit_on]
        c_feats, c_logits = outputs(model, calibration_views)
        i_feats, i_logits = outputs(model, inside_views)
        o_feats, o_logits = outputs(model, outside_views)
        calibration_scores = scores(c_feats, c_logits, means, precision)
        inside_scores, outside_scores = scores(i_feats, i_logits, means, precision), scores(o_feats, o_logits, means,
                                                                                          precision)
        other = "photos" if args.fit_on == "clean" else "clean"  # the class means from the other images, for the AUROC
        for key, value in scores(i_feats, i_logits, *fitted[other]).items():
            if key.startswith("mahalanobis"):
                inside_scores[f"{key} (fit on {other})"] = value
        for key, value in scores(o_feats, o_logits, *fitted[other]).items():
            if key.startswith("mahalanobis"):
                outside_scores[f"{key} (fit on {other})"] = value
        row = {"checkpoint": name, "test_accuracy": meta.get("test_accuracy"),
               "rephotographed_accuracy_centre": (i_logits[:, 0].argmax(1) == labels).float().mean().item(),
               "rephotographed_accuracy_views": (i_logits.mean(1).argmax(1) == labels).float().mean().item()}
        for score in inside_scores:
            row[f"auroc: {score}"] = auroc(inside_scores[score], outside_scores[score])
        threshold = float(np.quantile(calibration_scores[CHOSEN], 1 - args.none_rate))
        row["threshold"] = threshold
        row["calibration_none"] = float((calibration_scores[CHOSEN] > threshold).mean())
        row["in_class_called_none"] = float((inside_scores[CHOSEN] > threshold).mean())
        given = outside_scores[CHOSEN] <= threshold
        row["out_of_class_given_a_class"] = float(given.mean())
        for family in dict.fromkeys(families):
            row[f"given a class: {family}"] = float(given[families == family].mean())
        rows.append(row)
        if index == 0 and args.write_stats:
            figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            rule = openset.OpenSet(means, precision, threshold, {
                "checkpoint": Path(path).name, "checkpoint_sha256": sha256_of(path), "score": CHOSEN,
                "views": openset.VIEWS, "fit_images": len(fit_index), "fit_on": args.fit_on,
                "none_rate_set": args.none_rate,
                "figures": figures, "command": "python bench/bench.py openset " + " ".join(sys.argv[2:])})
            written = str(rule.save(openset.stats_path(path)))
            print(f"-> {written}")
    meta = {**environment(torch.device("cpu")), "hardware": device_name(torch.device("cpu")),
            "in_class": len(inside), "out_of_class": {f: int((families == f).sum()) for f in dict.fromkeys(families)},
            "none_rate_set": args.none_rate, "chosen_score": CHOSEN, "stats_written": written}
    out = report("openset", [dict(r) for r in rows], meta, args.out)
    for row in rows:  # the figures a reader looks for, one line per checkpoint
        print(f"{row['checkpoint']}: re-photographed {row['rephotographed_accuracy_centre']:.1%} (centre) / "
              f"{row['rephotographed_accuracy_views']:.1%} (views); AUROC {row['auroc: ' + CHOSEN]:.3f}; at the "
              f"threshold in-class 'none' {row['in_class_called_none']:.1%}, out-of-class given a class "
              f"{row['out_of_class_given_a_class']:.1%}")
    return out


def answer_cost(photos_, calls: int = 20) -> dict:
    """Median ms of the Photo tab's probabilities alone and with the open-set verdict, for `calls` photos, with the
    shipped checkpoint (run it on a quiet machine for a figure)."""
    import statistics

    from alexnet_demo import openset
    from alexnet_demo.inference import load_classifier
    classifier = load_classifier("cifar10")
    chosen = [p.image for p in photos_[:calls]]
    for image in chosen[:3]:  # warm-up: oneDNN's primitive caches, the rule's file
        classifier.run(image, maps=False), openset.judge(classifier, image)

    def median_ms(answer):
        times = []
        for image in chosen:
            started = time.perf_counter()
            answer(image)
            times.append((time.perf_counter() - started) * 1e3)
        return statistics.median(times)
    return {"probabilities_ms": median_ms(lambda im: classifier.run(im, maps=False)),
            "probabilities_and_verdict_ms": median_ms(lambda im: (classifier.run(im, maps=False),
                                                                  openset.judge(classifier, im)))}


def main(argv=None) -> int:
    parser = own_parser(__doc__, "tiny sizes: exercise the code paths only")
    parser.add_argument("checkpoints", nargs="*", default=[str(SHIPPED)], help="CIFAR-10 checkpoints, side by side")
    parser.add_argument("--baseline", default=None, help="a checkpoint to compare against, measured after the others")
    parser.add_argument("--in-count", type=int, default=1000, help="re-photographed test (and training) images")
    parser.add_argument("--per-family", type=int, default=100, help="out-of-class photos per family")
    parser.add_argument("--fit-per-class", type=int, default=300, help="training images per class for the means")
    parser.add_argument("--fit-on", choices=("photos", "clean"), default="photos",
                        help="class means and covariance from the training images re-photographed, or as they are")
    parser.add_argument("--none-rate", type=float, default=0.05,
                        help="share of re-photographed training images called 'none' at the threshold")
    parser.add_argument("--write-stats", action="store_true", help="write the first checkpoint's open-set file")
    parser.add_argument("--cost", action="store_true",
                        help="only time the Photo tab's answer with and without the verdict (20 photos of other things)")
    args = parser.parse_args(argv)
    if args.cost:
        from alexnet_demo import photos
        cost = answer_cost(photos.out_of_class(3, seed=0))
        report("openset_cost", [cost], environment(torch.device("cpu")), args.out)
        return 0
    if args.baseline:
        args.checkpoints = [*args.checkpoints, args.baseline]
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
