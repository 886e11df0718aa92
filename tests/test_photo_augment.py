"""Photo-like training augmentation and outlier images (alexnet_demo/photo_augment.py) and their config fields."""
import math

import pytest
import torch

from alexnet_demo.config import TrainConfig, recipe_config
from alexnet_demo.photo_augment import TILE, colour_fields, jigsaw, outlier_images, outlier_loss, photo_batch


def _images(n=6, seed=0):
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_photo_batch_is_normalized_input_size_and_repeatable_under_a_seed():
    images = _images()
    a = photo_batch(images, "cifar10", 50, torch.Generator().manual_seed(3))
    b = photo_batch(images, "cifar10", 50, torch.Generator().manual_seed(3))
    assert a.shape == (6, 3, 50, 50) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, photo_batch(images, "cifar10", 50, torch.Generator().manual_seed(4)))
    assert torch.isfinite(a).all() and -2.5 < a.min() and a.max() < 2.5  # (0..1 - mean) / std


def test_jigsaw_reorders_whole_tiles_of_each_image():
    images = _images(3)
    out = jigsaw(images, torch.Generator().manual_seed(0))
    assert not torch.equal(out, images)
    for before, after in zip(images, out):
        def tiles(x):
            t = x.unfold(1, TILE, TILE).unfold(2, TILE, TILE).permute(1, 2, 0, 3, 4).reshape(16, -1)
            return sorted(map(tuple, t.tolist()))
        assert tiles(before) == tiles(after)  # the same tiles, in another order


def test_outlier_images_are_half_jigsaws_half_colour_fields():
    out = outlier_images(_images(10), 8, torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.uint8
    fields = colour_fields(4, 3, 32, 32, torch.Generator().manual_seed(1))
    assert fields.shape == (4, 3, 32, 32) and fields.dtype == torch.uint8


def test_outlier_loss_is_least_at_equal_probabilities():
    assert outlier_loss(torch.zeros(4, 10)).item() == pytest.approx(math.log(10))
    assert outlier_loss(torch.tensor([[5.0] + [0.0] * 9])).item() > math.log(10)


def test_photo_and_outliers_are_cifar10_only_and_bounded():
    assert recipe_config("cifar10_photos").photo == 0.5
    with pytest.raises(ValueError, match="photo"):
        TrainConfig(dataset="mnist", photo=0.5)
    with pytest.raises(ValueError, match="outliers"):
        TrainConfig(dataset="cifar10", outliers=2.0)


def test_the_engine_trains_with_photo_framing_and_outliers(cifar_root):
    from alexnet_demo.training import DoneEvent, StepEvent, train
    config = TrainConfig(dataset="cifar10", photo=0.5, outliers=0.25, epochs=1, batch_size=32, subset=200,
                         max_batches=3, log_every=1, eval_limit=100, input_size=47, classifier_width=64,
                         optimizer="sgd", lr=0.01, data_root=cifar_root)
    events = list(train(config))
    steps = [e for e in events if isinstance(e, StepEvent)]
    done = events[-1]
    assert len(steps) == 3 and all(math.isfinite(s.train_loss) for s in steps)
    assert isinstance(done, DoneEvent) and not done.cancelled and 0 <= done.test_accuracy <= 1
