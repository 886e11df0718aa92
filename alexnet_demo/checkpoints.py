"""Checkpoints: safetensors weights + JSON metadata, written atomically, never unpickled; local first, then the Hub."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .models import PRESETS, build_model

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
META_KEY = "alexnet_demo"  # the safetensors metadata entry that holds our JSON
REQUIRED_META = ("preset", "input_size", "classes")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, truncated or does not fit its model; names the file."""


def atomic_save(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Write a safetensors file through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be read by others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_checkpoint(path, model: torch.nn.Module, meta: dict, dtype: torch.dtype = torch.float16) -> Path:
    """Weights cast to `dtype` (floating tensors only; BatchNorm counters stay integer) plus `meta` as JSON."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = {**meta, "weights_dtype": str(dtype).removeprefix("torch.")}
    return atomic_save(tensors, path, {META_KEY: json.dumps(meta)})


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors and our JSON metadata of a safetensors file, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a bad header or short file
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(raw.get(META_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({e})") from None
    return tensors, meta


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """The float32 model in eval mode and its metadata; CheckpointError says what is wrong with the file."""
    tensors, meta = read_safetensors(path)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {missing}; not an alexnet_demo checkpoint")
    if meta["preset"] not in PRESETS:
        raise CheckpointError(f"{path}: unknown preset {meta['preset']!r} (known: {sorted(PRESETS)})")
    try:  # on the meta device: random init of 47M weights that the file replaces costs ~0.7 s on 2 cores
        with torch.device("meta"):  # a file older than an option was made with the write-ups' layers
            model = build_model(meta["preset"], int(meta["input_size"]), num_classes=len(meta["classes"]),
                                batch_norm=bool(meta.get("batch_norm", False)),
                                classifier_width=int(meta.get("classifier_width", 4096)))
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k} has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if problems:
        shown = "; ".join(problems[:4]) + ("; …" if len(problems) > 4 else "")
        raise CheckpointError(f"{path}: does not fit the {meta['preset']!r} model: {shown}")
    model.load_state_dict(state, assign=True)  # the file's tensors become the parameters (the check above: all)
    return model.eval(), meta


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_from(model: torch.nn.Module, path: str | os.PathLike, config, classes=None) -> dict:
    """Copy a checkpoint's weights into `model` (the start of a fine-tuning run with TrainConfig `config`);
    CheckpointError when the file holds another model. When the run's `classes` differ from the file's (a visitor's
    own classes), the last layer stays new: every other weight comes from the file. Returns what the new file's
    metadata records of its parent."""
    source, meta = load_checkpoint(path)
    parent = (meta["preset"], int(meta["input_size"]), bool(meta.get("batch_norm")),
              int(meta.get("classifier_width", 4096)))
    run = (config.preset, config.input_size, config.batch_norm, config.classifier_width)
    if parent != run:
        def described(kind, preset, size, batch_norm, width):
            return f"a {preset} {kind} at {size} px {'with' if batch_norm else 'without'} BatchNorm, {width} wide"
        raise CheckpointError(f"{path}: {described('model', *parent)} cannot start {described('run', *run)}")
    state = source.state_dict()
    new_head = classes is not None and list(classes) != list(meta["classes"])
    if new_head:  # the last Linear answers the file's classes: keep the fresh one
        last = [name for name, m in model.classifier.named_children() if isinstance(m, torch.nn.Linear)][-1]
        state = {k: v for k, v in state.items() if not k.startswith(f"classifier.{last}.")}
    model.load_state_dict(state, strict=not new_head)
    return {"init_sha256": sha256_of(path), "init_test_accuracy": meta.get("test_accuracy"),
            "init_file": Path(path).name, "init_classes": list(meta["classes"])}


@torch.no_grad()
def round_to_float16_(model: torch.nn.Module) -> None:
    """Round the floating weights and buffers to float16 values in place (what a checkpoint stores)."""
    for t in model.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.half())


# ---- resumable training state: float32 weights, optimizer, RNG, progress ---------------------------------


def state_path(checkpoint: str | os.PathLike) -> Path:
    """Where the resumable training state lives beside a checkpoint: `<name>.state.safetensors`."""
    return Path(str(checkpoint).removesuffix(".safetensors") + ".state.safetensors")


def save_state(path: Path, model, optimizer, generator: torch.Generator, progress: dict) -> None:
    """Everything `--resume` needs, as tensors plus a JSON `progress` record (epoch, history, schedule)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for i, s in opt["state"].items():
        tensors.update({f"optim.{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)) for k, v in s.items()})
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if generator.device.type == "cuda":  # dropout on a GPU draws from the device's own generator
        tensors["rng.cuda"] = torch.cuda.get_rng_state(generator.device)
    progress = {**progress, "param_groups": opt["param_groups"]}
    atomic_save(tensors, path, {"progress": json.dumps(progress)})


def load_state(path: Path, model, optimizer, generator: torch.Generator) -> dict:
    """Restore what `save_state` wrote into `model`, `optimizer` and `generator`; returns the progress record."""
    tensors, _ = read_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        progress = json.loads((f.metadata() or {}).get("progress", "{}"))
    if "epoch" not in progress:
        raise CheckpointError(f"{path}: not a training-state file (no progress record)")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": progress.pop("param_groups")})
    for param, values in optimizer.state.items():  # the file's moments are contiguous: give each its parameter's
        for name, v in values.items():  # strides (channels_last), which CUDA's fused Adam and SGD insist on
            if torch.is_tensor(v) and v.shape == param.shape:
                values[name] = torch.empty_like(param, dtype=v.dtype).copy_(v)
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and generator.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], generator.device)
    return progress


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A path as given; a preset name as `checkpoints/<name>.safetensors`, else from the Hub repo in
    env ALEXNET_DEMO_HUB_REPO (hf_hub_download). Raises CheckpointError saying where it looked."""
    name = str(name_or_path)
    if name not in PRESETS:
        return Path(name)
    local = CHECKPOINT_DIR / f"{name}.safetensors"
    if local.is_file():
        return local
    repo = os.environ.get("ALEXNET_DEMO_HUB_REPO")
    if not repo:
        raise CheckpointError(f"{local}: no shipped checkpoint, and env ALEXNET_DEMO_HUB_REPO names no Hub repo")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo, filename=f"{name}.safetensors"))
    except Exception as e:  # offline (LocalEntryNotFoundError), not found, no network
        raise CheckpointError(f"{local}: missing locally, and the Hub repo {repo!r} gave none "
                              f"({type(e).__name__}: {e})") from None


def model_card(meta: dict) -> str:
    """The Hub model card: architecture, data, accuracy and the command that trained the weights."""
    accuracy = meta.get("test_accuracy")
    accuracy_line = f"{accuracy:.2%}" if isinstance(accuracy, float) else "not measured"
    data_note = " (CIFAR-10 as JPEG at quality 75 when trained from ../shared/data)" if meta["preset"] == "cifar10" \
        else ""
    return f"""---
license: mit
library_name: pytorch
tags: [alexnet, image-classification, {meta['dataset']}, safetensors]
datasets: [{meta['dataset']}]
---
# AlexNet `{meta['preset']}` preset

An AlexNet adapted to {meta['dataset'].upper()}, from the alexnet_demo project: input {meta['input_size']}×{meta['input_size']},
classes {', '.join(meta['classes'])}. Weights are float16 safetensors; load them with
`alexnet_demo.load_classifier(path)`, which upcasts to float32.

| | |
|---|---|
| test accuracy | {accuracy_line}{data_note} |
| epochs | {meta.get('epochs_done', '?')} |
| training time | {meta.get('train_time_s', '?')} s on {meta.get('hardware', '?')} |
| torch | {meta.get('torch', '?')} |

Training command:

```
{meta.get('command', 'python -m alexnet_demo.train ' + '(command not recorded)')}
```
"""


def push_checkpoint(path: str | os.PathLike, repo_id: str, token: str | None = None, api=None) -> str:
    """Upload a checkpoint as `<preset>.safetensors` plus a model card to the Hub model repo `repo_id`."""
    from huggingface_hub import HfApi

    _, meta = load_checkpoint(path)
    api = api or HfApi(token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True)
    api.upload_file(path_or_fileobj=str(path), path_in_repo=f"{meta['preset']}.safetensors", repo_id=repo_id,
                    repo_type="model", commit_message=f"Upload {meta['preset']} checkpoint")
    api.upload_file(path_or_fileobj=model_card(meta).encode(), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="model", commit_message="Model card")
    return f"https://huggingface.co/{repo_id}"
