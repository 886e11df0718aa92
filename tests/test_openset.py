"""The open-set rule (alexnet_demo/openset.py) and its evaluation photos (alexnet_demo/photos.py)."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet_demo import openset, photos
from alexnet_demo.checkpoints import CHECKPOINT_DIR
from alexnet_demo.inference import load_classifier

SHIPPED_RULE = openset.stats_path(CHECKPOINT_DIR / "cifar10.safetensors")


def test_views_of_any_photo_are_six_32px_framings_the_first_the_photo_tabs():
    from alexnet_demo.preprocessing import photo_to_cifar
    photo = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    v = openset.views(photo)
    assert v.shape == (openset.VIEWS, 32, 32, 3) and v.dtype == np.uint8
    assert np.array_equal(v[0], photo_to_cifar(photo)) and np.array_equal(v[1], v[0][:, ::-1])


def test_mahalanobis_with_identity_covariance_is_the_squared_distance_to_the_nearest_mean():
    means, precision = torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.eye(2)
    d = openset.mahalanobis(torch.tensor([[1.0, 1.0], [9.0, 0.0]]), means, precision)
    assert d.tolist() == pytest.approx([2.0, 1.0])


def test_fit_finds_the_class_means_and_the_shared_covariance():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(5000)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    feats = centres[labels] + torch.randn(10000, 2, generator=g) * torch.tensor([1.0, 2.0])
    means, precision = openset.fit(feats, labels, classes=2)
    assert means.flatten().tolist() == pytest.approx(centres.flatten().tolist(), abs=0.1)
    assert torch.linalg.inv(precision).diagonal().tolist() == pytest.approx([1.0, 4.0], rel=0.1)


def test_a_checkpoint_without_an_open_set_file_gets_no_verdict(untrained_cifar):
    assert openset.judge(untrained_cifar, np.zeros((64, 64, 3), np.uint8)) is None


def test_the_evaluation_photos_are_made_from_a_seed_in_every_family():
    images = np.random.default_rng(0).integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    inside = photos.in_class(images, np.arange(40) % 10, 20, seed=0)
    again = photos.in_class(images, np.arange(40) % 10, 20, seed=0)
    assert len(inside) == 20 and all(p.family == "cifar10" and p.image.mode == "RGB" for p in inside)
    assert [np.asarray(p.image).tobytes() for p in inside] == [np.asarray(p.image).tobytes() for p in again]
    outside = photos.out_of_class(2, np.zeros((2, 28, 28), np.uint8), seed=0)
    assert {p.family for p in outside} >= {"text", "patterns", "noise", "mnist digits", "house numbers"}
    assert all(p.label is None and 96 <= max(p.image.size) <= 512 for p in outside)


@pytest.mark.skipif(not SHIPPED_RULE.is_file(), reason="no checkpoints/cifar10.openset.safetensors shipped")
def test_the_shipped_rule_says_none_for_a_sign_and_passes_cifar10_examples():
    """A sign the rule calls "none" (README: it calls only 14% of other things "none" at its threshold, so this is
    one such photo, not a typical one) and the ten CIFAR-10 examples, which it lets through."""
    from alexnet_demo.ui.photo import EXAMPLES_DIR
    classifier = load_classifier("cifar10")
    sign = photos.text_photo(random.Random(7), photos._fonts())
    verdict = openset.judge(classifier, sign)
    assert verdict.none and verdict.distance > verdict.threshold and "closest:" in verdict.text(classifier.classes)
    examples = sorted(EXAMPLES_DIR.glob("cifar10/*.png"))
    kept = [not openset.judge(classifier, str(e)).none for e in examples]
    assert sum(kept) >= 8, kept  # the rule calls about 5% of re-photographed CIFAR-10 images "none"


def test_auroc_is_the_chance_an_outsider_scores_higher():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from openset import auroc
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5


@pytest.mark.slow
def test_the_openset_benchmark_runs_and_writes_a_rule_the_app_loads(cifar_root, data_root, tmp_path):
    import json
    import shutil
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import bench
    checkpoint = tmp_path / "cifar10.safetensors"
    shutil.copy(CHECKPOINT_DIR / "cifar10.safetensors", checkpoint)
    assert bench.main(["openset", str(checkpoint), "--tiny", "--write-stats", "--data-root", data_root,
                       "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "openset.json").read_text())["rows"][0]
    assert all(0 <= v <= 1 for k, v in row.items() if k.startswith("auroc"))
    rule = openset.load(checkpoint)
    assert rule is not None and rule.means.shape == (10, 256) and rule.threshold == pytest.approx(row["threshold"])


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_RULE.is_file(), reason="no checkpoints/cifar10.openset.safetensors shipped")
def test_an_api_caller_gets_the_open_set_verdict(live_app, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    sign = tmp_path / "sign.png"
    photos.text_photo(random.Random(7), photos._fonts()).save(sign)
    client = gradio_client.Client(live_app[0], verbose=False)
    label, note = client.predict(gradio_client.handle_file(str(sign)), api_name="/classify_image")
    assert "doesn't look like any of the ten" in note and len(label["confidences"]) == 5
    example = str(CHECKPOINT_DIR.parent / "alexnet_demo" / "examples" / "cifar10" / "ship.png")
    _, note = client.predict(gradio_client.handle_file(example), api_name="/classify_image")
    assert note.startswith("Looks like a **ship**")
