"""The README's front door stays true: model tables from the code, the test command CI runs, Space front matter."""
from pathlib import Path

from alexnet_demo.models import PRESETS, model_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_model_tables_match_the_code():
    for preset in PRESETS:
        assert model_table(preset) in README


def test_ci_runs_the_readme_test_command():
    assert "python -m pytest -q" in README
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_space_front_matter_pins_the_installed_gradio():
    import gradio
    front = README.split("---")[1]
    assert "sdk: gradio" in front and f"sdk_version: {gradio.__version__}" in front and "app_file: app.py" in front
    assert f"gradio=={gradio.__version__}" in (ROOT / "requirements.txt").read_text()


def test_shipped_checkpoint_figures_and_recipes_are_the_files_own():
    """The README quotes each shipped file's recorded test accuracy, and its `--recipe` command describes exactly
    the run the file's metadata records (its own command line, parsed again, too)."""
    import shlex
    from dataclasses import asdict

    from alexnet_demo.checkpoints import CHECKPOINT_DIR, read_safetensors
    from alexnet_demo.cli import parse_config

    for preset in PRESETS:
        path = CHECKPOINT_DIR / f"{preset}.safetensors"
        _, meta = read_safetensors(path)
        assert f"{meta['test_accuracy']:.2%}" in README, path.name
        recipe = meta.get("recipe", preset)  # the recipe that made it (cifar10's: cifar10_photos, a fine-tune)
        command = f"python -m alexnet_demo.train --recipe {recipe} --data-root ../shared/data --out checkpoints/{path.name}"
        assert command in README, path.name
        recorded = {**meta["config"], "input_size": meta["input_size"]}  # recorded before input_size was resolved
        recorded.pop("out")  # where the run wrote its file (cifar10's: runs/, then copied), not how it trained
        for argv in (shlex.split(command)[3:], shlex.split(meta["command"])[3:]):
            config = asdict(parse_config(argv)[0])
            assert {k: config[k] for k in recorded} == recorded, path.name


def test_no_placeholder_is_left():
    import re
    assert not re.search(r"\b(SHIPPED_TABLE|PERFORMANCE|[A-Z]+_(ACCURACY|ROW|COMMAND|NOTES|TABLE|LINE))\b", README)


def test_every_picture_the_readme_shows_is_in_the_repository():
    import re
    pictures = re.findall(r"\]\((docs/[^)]+\.png)\)", README)
    assert len(pictures) >= 5 and all((ROOT / p).is_file() for p in pictures), pictures
