"""The benchmarks' code paths (GPU ones included) run on CPU at tiny sizes, so they cannot rot."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("which,extra", [
    ("throughput", ["--steps", "2", "--warmup", "1", "--batch-size", "16"]),
    ("accuracy", ["--seeds", "1"]),
    ("latency", []),
    ("plots", []),
])
def test_benchmark_runs_and_writes_json(which, extra, data_root, cifar_root, tmp_path):
    assert bench.main([which, "--tiny", "--data-root", data_root, "--out", str(tmp_path), *extra]) == 0
    name = {"accuracy": "time_to_accuracy", "plots": "plot_overhead"}.get(which, which)
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert result["hardware"] and result["torch"] and result["rows"]
    for row in result["rows"]:
        for key, value in row.items():
            if key.endswith("per_s"):
                assert value > 0


def test_the_visitor_benchmark_runs_the_train_tabs_default_run(data_root, cifar_root, tmp_path):
    assert bench.main(["visitor", "--tiny", "--data-root", data_root, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "visitor.json").read_text())["rows"]
    assert [r["dataset"] for r in rows] == ["mnist", "cifar10"]
    assert all(0 < r["first_point_s"] < r["start_to_done_s"] and 0 <= r["test_accuracy"] <= 1 for r in rows)


def test_the_formats_benchmark_measures_every_shipped_model_and_recipe(tmp_path):
    assert bench.main(["formats", "--tiny", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "formats.json").read_text())["rows"]
    forwards = [r for r in rows if r["what"].endswith("forward")]
    steps = [r for r in rows if r["what"].endswith("training step")]
    assert [r["what"] for r in forwards] == ["mnist forward", "cifar10 forward"]
    assert len(steps) == 4 and all(r["fp32_images_per_s"] > 0 and r["bf16_images_per_s"] > 0 for r in steps)
    for r in forwards:  # whichever format won, the reason names it and a bf16 answer stayed within the tolerance
        assert r["reason"].startswith(r["chosen"])
        assert r["chosen"] == "fp32" or r["max_probability_change"] <= 0.02


def test_the_photos_benchmark_reads_each_checkpoint_as_it_is_re_photographed_and_interpolated(data_root, cifar_root,
                                                                                            tmp_path):
    """A checkpoint interpolated towards its own weights is itself: every share reads exactly as the file does."""
    shipped = str(Path(bench.ROOT) / "checkpoints" / "cifar10.safetensors")
    assert bench.main(["photos", shipped, "--split", "val", "--interpolate-from", shipped, "--shares", "0.3,1",
                       "--tiny", "--data-root", data_root, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "photos_tiny.json").read_text())
    rows = result["rows"]
    assert result["split"] == "val" and result["images"] == 100 and result["rephotographed"] == 100
    assert [r["checkpoint"] for r in rows] == ["cifar10.safetensors", "cifar10.safetensors at share 0.3 from "
                                               "cifar10.safetensors", "cifar10.safetensors at share 1 from "
                                               "cifar10.safetensors"]
    keys = ("as_they_are", "rephotographed_centre", "rephotographed_6_framings")
    assert all(r[k] == rows[0][k] for r in rows for k in keys) and all(0 < rows[0][k] <= 1 for k in keys)
