"""The presets match the write-ups layer for layer: shapes, parameter counts, input-size rules."""
import pytest
import torch

from alexnet_demo import build_model
from alexnet_demo.models import CONV_LAYERS, count_parameters, feature_taps, forward_with_maps, layer_table

MNIST_SHAPES = [(96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12), (384, 12, 12),
                (256, 12, 12), (256, 5, 5)]
CIFAR_SHAPES = [(96, 11, 11), (96, 5, 5), (256, 5, 5), (256, 3, 3), (384, 3, 3), (384, 3, 3), (256, 3, 3),
                (256, 1, 1)]


def shapes_after_conv_and_pool(preset):
    return [row["output"] for row in layer_table(preset)
            if row["type"] in ("Conv2d", "MaxPool2d")]


def test_mnist_layer_shapes_match_the_write_up():
    assert shapes_after_conv_and_pool("mnist") == MNIST_SHAPES


def test_cifar10_layer_shapes_match_the_write_up():
    assert shapes_after_conv_and_pool("cifar10") == CIFAR_SHAPES


@pytest.mark.parametrize("preset,channels,size", [("mnist", 1, 224), ("cifar10", 3, 50), ("mnist", 1, 97)])
def test_layer_table_shapes_agree_with_a_real_forward_pass(preset, channels, size):
    """The table is shape arithmetic on the meta device; stepping real tensors through `features` must agree."""
    model = build_model(preset, input_size=size).eval()
    x, real = torch.zeros(1, channels, size, size), []
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            real.append(tuple(x.shape[1:]))
        x = torch.flatten(x, 1)
        for layer in model.classifier:
            x = layer(x)
            real.append(tuple(x.shape[1:]))
    assert [row["output"] for row in layer_table(preset, input_size=size)] == real


def test_parameter_counts_are_exact():
    # The MNIST write-up's 47,686,346 has an arithmetic slip in FC1: 6400*4096 + 4096 = 26,218,496.
    assert count_parameters(build_model("mnist")) == 46_764_746
    assert count_parameters(build_model("cifar10")) == 21_622_506
    assert sum(r["params"] for r in layer_table("mnist")) == 46_764_746


@pytest.mark.parametrize("preset,channels,size", [("mnist", 1, 224), ("cifar10", 3, 50)])
def test_forward_gives_ten_logits(preset, channels, size):
    model = build_model(preset).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_input_size_changes_the_first_linear_width():
    model = build_model("mnist", input_size=65)  # the smallest the mnist layers take
    assert model.classifier[0].in_features == 256
    assert model.eval()(torch.zeros(1, 1, 65, 65)).shape == (1, 10)
    assert build_model("mnist", input_size=128).classifier[0].in_features == 256 * 2 * 2  # 128 px -> 2x2 after pool5


def test_too_small_input_names_the_minimum():
    with pytest.raises(ValueError, match="minimum is 65 px"):
        build_model("mnist", input_size=64)


def test_unknown_preset_is_a_value_error():
    with pytest.raises(ValueError, match="preset must be one of"):
        build_model("imagenet")


def test_conv_layers_have_stable_names():
    for preset in ("mnist", "cifar10"):
        model = build_model(preset)
        names = dict(model.features.named_children())
        assert all(f"conv{i}" in names for i in range(1, 6))
        assert list(feature_taps(model)) == ["conv1", "conv2", "conv3", "conv4", "conv5"]


@pytest.mark.parametrize("preset,channels,size", [("mnist", 1, 224), ("mnist", 1, 65), ("mnist", 1, 97),
                                                  ("cifar10", 3, 50), ("cifar10", 3, 47), ("cifar10", 3, 64)])
def test_forward_walk_gives_the_same_logits_as_the_model(preset, channels, size):
    torch.manual_seed(0)
    model = build_model(preset, input_size=size).eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        logits, maps = forward_with_maps(model, x)
        torch.testing.assert_close(logits, model(x))
    assert list(maps) == list(CONV_LAYERS)
    assert all(m.shape[0] == 2 and m.min() >= 0 for m in maps.values())  # after ReLU


def test_forward_walk_masks_silence_channels_downstream_without_touching_weights():
    torch.manual_seed(0)
    model = build_model("mnist", input_size=65).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 1, 65, 65)
    with torch.no_grad():
        plain, plain_maps = forward_with_maps(model, x)
        ones, _ = forward_with_maps(model, x, masks={"conv3": torch.ones(384)})
        torch.testing.assert_close(ones, plain)  # ablating nothing changes nothing
        off = torch.ones(384)
        off[:10] = 0
        masked, maps = forward_with_maps(model, x, masks={"conv3": off})
    assert maps["conv3"][0, :10].abs().sum() == 0 and plain_maps["conv3"][0, :10].abs().sum() > 0
    assert not torch.allclose(masked, plain)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("preset", ["mnist", "cifar10"])
def test_batch_norm_model_has_a_batchnorm_after_every_conv_and_no_conv_bias(preset):
    model = build_model(preset, batch_norm=True)
    names = [name for name, _ in model.features.named_children()]
    for conv in CONV_LAYERS:
        bn = "bn" + conv[4:]
        assert names[names.index(conv) + 1] == bn  # torchvision's order: conv, then its BatchNorm
        assert model.features.get_submodule(conv).bias is None  # BN's shift replaces the bias
        assert model.features.get_submodule(bn).num_features == model.features.get_submodule(conv).out_channels
    assert feature_taps(model) == {conv: "bn" + conv[4:] for conv in CONV_LAYERS}  # maps at BN's output


def test_without_batch_norm_the_presets_keep_the_write_ups_layers():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("mnist").modules())
    cifar = [name for name, _ in build_model("cifar10").features.named_children() if name.startswith("bn")]
    assert cifar == ["bn1", "bn2"]


@pytest.mark.parametrize("preset,channels,size", [("mnist", 1, 65), ("cifar10", 3, 47)])
def test_batch_norm_forward_walk_and_masks_agree_with_the_model(preset, channels, size):
    torch.manual_seed(0)
    model = build_model(preset, input_size=size, batch_norm=True)
    model.train()(torch.randn(8, channels, size, size))  # running statistics away from their initial values
    model.eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        logits, maps = forward_with_maps(model, x)
        torch.testing.assert_close(logits, model(x))
        off = torch.ones(384)
        off[:5] = 0
        masked, masked_maps = forward_with_maps(model, x, masks={"conv3": off})
        resumed, _ = forward_with_maps(model, maps["conv3"] * off.view(1, -1, 1, 1), start="conv3")
    assert list(maps) == list(CONV_LAYERS) and all(m.min() >= 0 for m in maps.values())
    assert masked_maps["conv3"][:, :5].abs().sum() == 0
    torch.testing.assert_close(resumed, masked)  # resuming at a BN tap runs only the layers after it


def test_dropout_sets_the_classifier_rate():
    rates = [m.p for m in build_model("mnist", 65, dropout=0.1).classifier if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.1, 0.1]


@pytest.mark.parametrize("preset,flat", [("mnist", 6400), ("cifar10", 256)])
def test_classifier_width_sets_both_hidden_layers_and_only_them(preset, flat):
    narrow, full = build_model(preset, classifier_width=1024), build_model(preset)
    assert [m.out_features for m in narrow.classifier if isinstance(m, torch.nn.Linear)] == [1024, 1024, 10]
    removed = (flat + 1) * (4096 - 1024) + (4097 * 4096 - 1025 * 1024) + 10 * (4096 - 1024)
    assert count_parameters(full) - count_parameters(narrow) == removed
    assert str(narrow.features) == str(full.features)
