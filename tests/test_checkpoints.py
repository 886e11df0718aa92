"""Checkpoints are safetensors + JSON, written atomically, and bad files give errors that name the file."""
import pytest
import torch

from alexnet_demo import build_model
from alexnet_demo.checkpoints import CheckpointError, load_checkpoint, read_safetensors, save_checkpoint

META = {"preset": "cifar10", "input_size": 50, "classes": ["c%d" % i for i in range(10)], "dataset": "cifar10"}


def test_round_trip_in_float16_upcasts_to_float32(tmp_path):
    model = build_model("cifar10")
    path = save_checkpoint(tmp_path / "m.safetensors", model, META)
    tensors, meta = read_safetensors(path)
    assert tensors["features.conv1.weight"].dtype == torch.float16
    assert tensors["features.bn1.num_batches_tracked"].dtype == torch.int64
    loaded, meta = load_checkpoint(path)
    assert meta["weights_dtype"] == "float16" and meta["classes"] == META["classes"]
    assert loaded.features.conv1.weight.dtype == torch.float32
    assert torch.allclose(loaded.features.conv1.weight, model.features.conv1.weight, atol=1e-3)
    assert not loaded.training
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place


def test_truncated_file_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("cifar10"), META)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="m.safetensors: not a readable safetensors file"):
        load_checkpoint(path)


def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, path)  # a pickle-based file
    with pytest.raises(CheckpointError, match="evil.safetensors"):
        load_checkpoint(path)


def test_wrong_shapes_are_reported(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("cifar10", input_size=100), META)
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(path)  # metadata says 50 px, the weights are for 64 px


def test_wrong_preset_is_reported(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("cifar10"), {**META, "preset": "mnist",
                                                                                 "input_size": 224})
    with pytest.raises(CheckpointError, match="does not fit the 'mnist' model"):
        load_checkpoint(path)


def test_missing_metadata_and_missing_file(tmp_path):
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an alexnet_demo checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_no_torch_load_without_weights_only():
    from pathlib import Path
    for source in (Path(__file__).parent.parent / "alexnet_demo").glob("*.py"):
        text = source.read_text()
        assert "import pickle" not in text and "pickle.load" not in text, source
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, (source, line)


def test_resumed_optimizer_moments_keep_their_parameters_channels_last_strides(tmp_path):
    """CUDA's fused Adam refuses moments whose strides differ from their parameter's; the file stores them
    contiguous, so a resumed channels_last model must get them back in its own layout (seen on an H100)."""
    from alexnet_demo.checkpoints import load_state, save_state

    def model_and_optimizer():
        model = build_model("mnist", input_size=65, classifier_width=16).to(memory_format=torch.channels_last)
        return model, torch.optim.Adam(model.parameters())

    model, optimizer = model_and_optimizer()
    model(torch.randn(2, 1, 65, 65)).sum().backward()
    optimizer.step()
    save_state(tmp_path / "s.safetensors", model, optimizer, torch.Generator(), {"epoch": 1})
    model, optimizer = model_and_optimizer()
    load_state(tmp_path / "s.safetensors", model, optimizer, torch.Generator())
    conv2 = model.features.conv2.weight  # (256, 96, 5, 5): optimizer index 2
    assert conv2.stride() != conv2.contiguous().stride()  # the case that matters: a channels_last weight
    for param, values in optimizer.state.items():
        assert values["exp_avg"].stride() == param.stride() and values["exp_avg_sq"].stride() == param.stride()
    saved = read_safetensors(tmp_path / "s.safetensors")[0]
    assert torch.equal(optimizer.state[conv2]["exp_avg"], saved["optim.2.exp_avg"])  # same values, new strides
