"""Explanations against known answers: Captum's Grad-CAM equals the hand-derived one, heat follows the digit,
sweeps are single calls batched, ablating nothing changes nothing and the weights are never touched."""
import copy
import hashlib

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from alexnet_demo import ablation as A
from alexnet_demo import explain as E
from alexnet_demo.checkpoints import CHECKPOINT_DIR
from alexnet_demo.explain_figures import ablation_figure, attribution_figure, overlay, probe_figure, top_channels_panel
from alexnet_demo.models import CONV_LAYERS, forward_with_maps


def canvas_seven(x0=150, x1=330, y0=60, y1=420, w=28):
    """A 480x480 RGBA Sketchpad canvas with a '7' drawn in its alpha."""
    c = np.zeros((480, 480, 4), np.uint8)
    c[y0:y0 + w, x0:x1, 3] = 255  # the bar
    for i in range(y0, y1):  # the stroke from the bar's right end down to the left
        x = int(x1 - (i - y0) * (x1 - x0) * 0.6 / (y1 - y0))
        c[i, x - w:x, 3] = 255
    return c


PHOTO = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def shipped_mnist():
    if not (CHECKPOINT_DIR / "mnist.safetensors").is_file():
        pytest.skip("the shipped checkpoints/mnist.safetensors is not there")
    from alexnet_demo.inference import load_classifier
    return load_classifier("mnist")


def seeing(classifier, seen):
    """The classifier, made to see exactly `seen` (what preprocessing would hand the network)."""
    fake = copy.copy(classifier)
    fake.preprocess = lambda image: seen
    return fake


# ---- bad input ---------------------------------------------------------------------------------------------


def test_nothing_drawn_is_a_clear_value_error(untrained_mnist):
    blank = np.zeros((480, 480, 4), np.uint8)
    for call in (lambda: E.grad_cam(untrained_mnist, blank), lambda: E.occlusion(untrained_mnist, blank),
                 lambda: E.probe(untrained_mnist, blank, "rotation"),
                 lambda: A.ablate(untrained_mnist, blank, "conv1")):
        with pytest.raises(ValueError, match="nothing drawn"):
            call()


@pytest.mark.parametrize("call,match", [
    (lambda c, i: E.grad_cam(c, i, layer="conv6"), r"layer 'conv6' does not exist: choose one of \['conv1'"),
    (lambda c, i: E.grad_cam(c, i, target="11"), r"class '11' does not exist"),
    (lambda c, i: E.grad_cam(c, i, target=10), r"class 10 does not exist: give one of .* an index 0-9"),
    (lambda c, i: E.occlusion(c, i, target=-1), r"class -1 does not exist"),
    (lambda c, i: E.occlusion(c, i, window=40), r"window <= 28"),
    (lambda c, i: A.ablate(c, i, "conv5", k=257), r"k must be 0-256 \(conv5 has 256 channels\), not 257"),
    (lambda c, i: A.ablate(c, i, "conv1", k=-1), r"k must be 0-96"),
    (lambda c, i: A.ablate(c, i, "conv1", channels=(3, 96)),
     r"channel\(s\) \[96\] do not exist: conv1 has channels 0-95"),
    (lambda c, i: A.ablate(c, i, "pool1"), r"layer 'pool1' does not exist"),
    (lambda c, i: E.probe(c, i, "blur"), r"transform 'blur' does not exist for mnist: choose one of \['shift_x'"),
    (lambda c, i: E.probe(c, i, "rotation", points=2), r"points must be 5-121"),
])
def test_bad_requests_say_what_is_wrong(untrained_mnist, call, match):
    with pytest.raises(ValueError, match=match):
        call(untrained_mnist, canvas_seven())


def test_classes_by_name_or_index(untrained_cifar):
    assert E.grad_cam(untrained_cifar, PHOTO, target="ship").target == 8
    assert E.occlusion(untrained_cifar, PHOTO, target=3).target_name == "cat"


# ---- Grad-CAM and occlusion --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,layer", [("mnist", "conv3"), ("mnist", "conv5"), ("cifar10", "conv3")])
def test_captum_grad_cam_equals_the_hand_derived_one(untrained_mnist, untrained_cifar, preset, layer):
    """In-place ReLUs and our choice of module: Captum must give relu(sum_k mean(dA_k) * A_k) on the map."""
    classifier = untrained_mnist if preset == "mnist" else untrained_cifar
    image = canvas_seven() if preset == "mnist" else PHOTO
    result = E.grad_cam(classifier, image, target=2, layer=layer)
    x = classifier.to_batch(classifier.preprocess(image))
    with torch.no_grad():
        _, maps = forward_with_maps(classifier.model, x)
    a = maps[layer].clone().requires_grad_(True)  # A: the rectified map, the output of the ReLU Captum hooks
    names = [name for name, m in classifier.model.features.named_children()]
    relu = next(n for n, m in classifier.model.features.named_children()
                if m is E.cam_module(classifier.model, layer))
    h = a
    for module in list(classifier.model.features)[names.index(relu) + 1:]:  # the rest of the network from A
        h = module(h)
    logits = classifier.model.classifier(torch.flatten(h, 1))
    (grad,) = torch.autograd.grad(logits[0, 2], a)  # dy/dA, also where A is 0 (the paper's definition)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    expected = E.place(cam, E.layer_extent(classifier.model, layer, classifier.input_size), classifier.input_size,
                       result.seen.shape[0])
    np.testing.assert_allclose(result.heat, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


def test_resuming_the_walk_at_any_layer_gives_the_same_logits(untrained_mnist, untrained_cifar):
    for classifier, image in ((untrained_mnist, canvas_seven()), (untrained_cifar, PHOTO)):
        x = classifier.to_batch(classifier.preprocess(image))
        with torch.no_grad():
            logits, maps = forward_with_maps(classifier.model, x)
            for layer in CONV_LAYERS:
                resumed, later = forward_with_maps(classifier.model, maps[layer], start=layer)
                torch.testing.assert_close(resumed, logits, rtol=1e-4, atol=1e-5)
                assert list(later) == list(CONV_LAYERS[CONV_LAYERS.index(layer):])


def test_layer_extent_is_receptive_field_arithmetic(untrained_mnist):
    from alexnet_demo.models import build_model
    mnist = build_model("mnist")
    assert E.layer_extent(mnist, "conv5", 224) == (8.5, 200.5)  # 12 cells centred 16 .. 192 px, 16 px apart
    assert E.layer_extent(mnist, "conv1", 224) == (2.5, 218.5)  # 54 cells centred 4 .. 216 px, 4 px apart


def test_hooks_go_on_a_private_copy_sharing_the_weights(untrained_mnist):
    model = untrained_mnist.model
    copy_ = E.hookable(model)
    assert copy_ is not model and copy_.features.conv1 is not model.features.conv1
    assert copy_.features.conv1.weight is model.features.conv1.weight
    E.grad_cam(untrained_mnist, canvas_seven())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.slow
@pytest.mark.parametrize("shift", [6, -6])
def test_heat_lies_where_the_digit_is(shipped_mnist, shift):
    """A '7' in the left (right) half of what the network sees: most Grad-CAM and occlusion heat for '7' is there."""
    seen = shipped_mnist.preprocess(canvas_seven())  # a narrow 7, columns 9-18
    moved = np.zeros_like(seen)
    if shift > 0:
        moved[:, :28 - shift] = seen[:, shift:]
    else:
        moved[:, -shift:] = seen[:, :28 + shift]
    fake = seeing(shipped_mnist, moved)
    assert max(fake.run(None).probabilities.items(), key=lambda kv: kv[1])[0] == "7"
    for result in (E.grad_cam(fake, None, target="7"), E.occlusion(fake, None, target="7")):
        left = result.heat[:, :14].sum() / result.heat.sum()
        assert (left if shift > 0 else 1 - left) > 0.85, (result.method, left)


# ---- probe ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,transform", [("mnist", t) for t in E.transforms_for("mnist")] +
                         [("cifar10", t) for t in E.transforms_for("cifar10")])
def test_probe_batch_equals_single_calls_and_the_input_is_one_point(untrained_mnist, untrained_cifar, preset,
                                                                     transform):
    classifier = untrained_mnist if preset == "mnist" else untrained_cifar
    image = canvas_seven() if preset == "mnist" else PHOTO
    result = E.probe(classifier, image, transform, points=11)
    seen = classifier.preprocess(image)
    images = E.transformed(classifier, seen, transform, result.values)
    for i in (0, 4, 10):  # batched row == the same image alone
        single = E.probabilities(classifier, images[i:i + 1])[0].numpy()
        np.testing.assert_allclose(result.probabilities[i], single, atol=1e-5)
    at_input = np.array([classifier.run(image).probabilities[c] for c in classifier.classes])
    np.testing.assert_allclose(result.probabilities[result.identity], at_input, atol=1e-5)
    np.testing.assert_array_equal(E.to_uint8(images[result.identity:result.identity + 1])[0], seen)
    assert result.probabilities.shape == (11, 10) and len(result.filmstrip) == 5


def test_shift_moves_the_picture_by_whole_pixels(untrained_mnist):
    seen = untrained_mnist.preprocess(canvas_seven())
    result = E.probe(untrained_mnist, canvas_seven(), "shift_x", points=5)  # -8, -4, 0, 4, 8 px
    value, frame = result.filmstrip[3]
    assert value == 4.0
    np.testing.assert_array_equal(frame[:, 4:], seen[:, :-4])  # 4 px to the right, black comes in from the left


def test_flip_points_name_the_first_change_on_each_side():
    p = np.zeros((7, 3))
    top = [1, 1, 0, 0, 0, 2, 2]  # classes 'a', 'b', 'c'; the input is the middle point
    p[np.arange(7), top] = 1
    values = np.array([-30, -20, -10, 0, 10, 20, 30.0])
    flips, summary = E.flip_points(p, values, 3, ("a", "b", "c"), "° anticlockwise")
    assert flips == [(-20.0, "b"), (20.0, "c")]
    assert summary == "stops being a at 20° clockwise (becomes b) and at 20° anticlockwise (becomes c)"
    assert E.flip_points(p[:, [0, 0, 0]], values, 3, ("a", "b", "c"), "° anticlockwise")[1] == \
        "stays a over the whole sweep, from 30° clockwise to 30° anticlockwise"


@pytest.mark.parametrize("value,unit,words", [(-36, "° anticlockwise", "36° clockwise"), (48, "° anticlockwise",
                         "48° anticlockwise"), (-2, "px right", "2 px left"), (-0.5, "px bolder", "0.5 px thinner"),
                         (0.63, "× size", "0.63× size"), (1.5, "px Gaussian σ", "1.5 px Gaussian σ")])
def test_swept_values_are_said_without_minus_signs_or_stray_spaces(value, unit, words):
    assert E.say_value(value, unit) == words


# ---- ablation --------------------------------------------------------------------------------------------------


def test_ablating_nothing_changes_nothing_and_effects_are_exact(untrained_mnist):
    before = {k: v.clone() for k, v in untrained_mnist.model.state_dict().items()}
    result = A.ablate(untrained_mnist, canvas_seven(), "conv4")
    assert result.switched_off == []
    np.testing.assert_allclose(result.ablated, result.original, atol=1e-6)
    x = untrained_mnist.to_batch(untrained_mnist.preprocess(canvas_seven()))
    for channel, change in result.effects[:3]:  # each effect, recomputed alone through the whole network
        mask = torch.ones(384)
        mask[channel] = 0
        with torch.no_grad():
            logits, _ = forward_with_maps(untrained_mnist.model, x, masks={"conv4": mask})
        assert logits[0].softmax(0)[result.top] - result.original[result.top] == pytest.approx(change, abs=1e-5)
    assert all(torch.equal(before[k], v) for k, v in untrained_mnist.model.state_dict().items())


def test_ablation_switches_off_the_k_most_active_and_the_named(untrained_cifar):
    x = untrained_cifar.to_batch(untrained_cifar.preprocess(PHOTO))
    with torch.no_grad():
        _, maps = forward_with_maps(untrained_cifar.model, x)
    most = maps["conv2"][0].mean(dim=(1, 2)).argsort(descending=True)[:5].tolist()
    result = A.ablate(untrained_cifar, PHOTO, "conv2", k=5, channels=(0, 7))
    assert result.switched_off == sorted(set(most) | {0, 7})
    assert len(result.effects) == 16 and all(0 <= c < 256 for c, _ in result.effects)


def test_with_every_channel_a_candidate_the_top_16_are_the_brute_force_top_16(untrained_cifar):
    result = A.ablate(untrained_cifar, PHOTO, "conv5", candidates=256)
    x = untrained_cifar.to_batch(untrained_cifar.preprocess(PHOTO))
    masks = 1 - torch.eye(256)
    with torch.no_grad():
        logits, _ = forward_with_maps(untrained_cifar.model, x.expand(256, -1, -1, -1), masks={"conv5": masks})
    change = logits.softmax(1)[:, result.top] - torch.tensor(result.original[result.top])
    expected = change.abs().argsort(descending=True)[:16].tolist()
    assert [c for c, _ in result.effects] == expected


@pytest.mark.slow
def test_the_shipped_weights_are_byte_identical_after_ablation(shipped_mnist):
    path = CHECKPOINT_DIR / "mnist.safetensors"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = A.ablate(shipped_mnist, canvas_seven(), "conv5", k=20)
    assert result.ablated[result.top] != pytest.approx(result.original[result.top], abs=1e-4)  # it did something
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# ---- figures and the panel ----------------------------------------------------------------------------------


def test_figures_draw_with_labelled_colour_scales(untrained_mnist, untrained_cifar):
    for classifier, image in ((untrained_mnist, canvas_seven()), (untrained_cifar, PHOTO)):
        fig = attribution_figure(E.grad_cam(classifier, image), E.occlusion(classifier, image))
        labels = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(labels) == 2 and "Grad-CAM" in labels[0] and "drop in P(" in labels[1]
        assert isinstance(probe_figure(E.probe(classifier, image, "scale", points=9)), Figure)
        assert isinstance(ablation_figure(A.ablate(classifier, image, "conv3", k=2)), Figure)


def test_an_ablation_that_changes_nothing_says_so_on_a_fixed_readable_scale():
    classes = tuple("0123456789")
    p = np.full(10, 1e-4, np.float32)
    p[7] = 1 - p.sum() + 1e-4
    tiny = A.Ablation("conv5", [1, 2], classes, p, p, 7, [(3, -2e-5), (9, 1e-5)])  # 0.002 percentage points
    right = ablation_figure(tiny).axes[1]
    assert right.get_xlim() == (-5, 5)  # not an axis of ±0.002 that makes noise look like effects
    assert "No single channel matters here\n(largest change 0.002 percentage points)" in [t.get_text() for t in right.texts]
    large = A.Ablation("conv5", [], classes, p, p, 7, [(3, -0.3), (9, 0.01)])
    right = ablation_figure(large).axes[1]
    assert right.get_xlim() == (-50, 50) and len(right.texts) == 0


def test_the_probe_marks_the_input_on_its_answers_curve(untrained_mnist):
    result = E.probe(untrained_mnist, canvas_seven(), "rotation", points=9)
    ax = probe_figure(result).axes[0]
    marker = next(line for line in ax.lines if line.get_marker() == "o" and line.get_color() == "black")
    assert marker.get_xdata()[0] == 0 and marker.get_ydata()[0] == pytest.approx(result.probabilities[4].max())
    assert any(t.get_text() == "your input" for t in ax.texts)


def test_overlay_keeps_the_image_where_there_is_no_heat():
    seen = np.full((28, 28), 200, np.uint8)
    heat = np.zeros((28, 28), np.float32)
    heat[:14] = 1.0
    out = overlay(seen, heat, size=224)
    assert out.shape == (224, 224, 3)
    assert (out[120:] == round(0.6 * 200)).all() and not (out[:100] == round(0.6 * 200)).all()


def test_top_channels_panel_is_one_labelled_palette_image(untrained_mnist):
    maps = untrained_mnist.run(canvas_seven()).feature_maps
    panel = top_channels_panel(maps, k=6, tile=72)
    assert isinstance(panel, Image.Image) and panel.mode == "P"
    assert panel.size == (84 + 6 * 78, 5 * 94 + 6)
    pixels = np.asarray(panel)
    assert (pixels == 0).any() and (pixels == 255).any()  # black label ink on the white gaps


@pytest.mark.slow
def test_the_explain_benchmark_runs_and_writes_json(shipped_mnist, tmp_path):
    import json
    import sys
    from argparse import Namespace
    sys.path.insert(0, str(CHECKPOINT_DIR.parent / "bench"))
    import explain as bench_explain
    path = bench_explain.run(Namespace(tiny=True, out=tmp_path))
    rows = json.loads(path.read_text())["rows"]
    assert {r["preset"] for r in rows} == {"mnist", "cifar10"} and all(r["p95_ms"] > 0 for r in rows)


def test_concurrent_explanations_agree_with_sequential_ones(untrained_mnist):
    """Two threads explaining while a third runs plain inference: hooks never leak between them."""
    from concurrent.futures import ThreadPoolExecutor
    image = canvas_seven()
    alone = E.grad_cam(untrained_mnist, image, target=3, layer="conv3").heat
    plain = untrained_mnist.run(image).probabilities
    with ThreadPoolExecutor(3) as pool:
        cams = [pool.submit(E.grad_cam, untrained_mnist, image, 3, "conv3") for _ in range(4)]
        runs = [pool.submit(untrained_mnist.run, image) for _ in range(4)]
        for f in cams:
            np.testing.assert_allclose(f.result().heat, alone, rtol=1e-5, atol=1e-9)
        for f in runs:
            assert f.result().probabilities == pytest.approx(plain, abs=1e-6)
