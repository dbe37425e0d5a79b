"""Batched sampling with the model's own confidence in each completion.

``generate(prompts, ...)`` returns, per prompt, the completion text and its confidence
c = icpo.core.sequence_confidence: the mean over completion tokens (the EOS token included, padding
after it excluded) of log softmax(logits)[token], computed from the model's raw logits, i.e. at
temperature 1 whatever the sampling temperature or top-p, so confidence does not depend on how we sample.

Two backends behind one interface: transformers (any device, the one tested here) and vLLM (used by
``make_generator`` when vllm is importable and a CUDA GPU is present; its per-token log-probs are the raw
model log-probs, vLLM's default ``logprobs_mode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from icpo.core import sequence_confidence


@dataclass(frozen=True)
class Generation:
    text: str
    confidence: float  # nan when the completion has no tokens
    num_tokens: int


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0


class TransformersGenerator:
    """Left-padded batched ``model.generate`` on a Hugging Face checkpoint folder."""

    def __init__(self, model_dir: str | Path, device: str | None = None, dtype: torch.dtype | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = dtype or (torch.bfloat16 if self.device == "cuda" else torch.float32)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device).eval()

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], settings: SamplingSettings, seed: int) -> list[Generation]:
        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.device)
        sampling = settings.temperature > 0
        torch.manual_seed(seed)
        output = self.model.generate(
            **encoded,
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=settings.top_p if sampling else None,
            top_k=0 if sampling else None,  # 0: no top-k cut (generation_config often sets 50)
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        tokens = output.sequences[:, encoded["input_ids"].shape[1] :]
        logits = torch.stack(output.logits, dim=1).float()  # [B, T, V], raw: before any logits processor
        token_logps = torch.log_softmax(logits, dim=-1).gather(2, tokens.unsqueeze(2)).squeeze(2)
        mask = _until_first_eos(tokens, self.model.generation_config.eos_token_id)
        confidence = sequence_confidence(token_logps, mask)
        texts = self.tokenizer.batch_decode(tokens * mask, skip_special_tokens=True)
        return [
            Generation(text, float(c), int(n))
            for text, c, n in zip(texts, confidence.tolist(), mask.sum(1).tolist(), strict=True)
        ]


def _until_first_eos(tokens: torch.Tensor, eos_token_id: int | list[int] | None) -> torch.Tensor:
    """1 for each token up to and including the first EOS of its row, 0 after it."""
    eos_ids = torch.tensor(
        []
        if eos_token_id is None
        else [eos_token_id]
        if isinstance(eos_token_id, int)
        else list(eos_token_id),
        device=tokens.device,
    )
    is_eos = torch.isin(tokens, eos_ids).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before each position
    return (eos_before == 0).long()


class VLLMGenerator:
    """vLLM offline engine (GPU). Not run in this project's CI: vLLM is not installable there."""

    def __init__(self, model_dir: str | Path):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir))
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[str], settings: SamplingSettings, seed: int) -> list[Generation]:
        from vllm import SamplingParams

        params = [  # one seed per row, so that repeated prompts give different samples
            SamplingParams(
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens,
                logprobs=0,
                seed=seed + row,
            )
            for row in range(len(prompts))
        ]
        generations = []
        for request in self.llm.generate(list(prompts), params, use_tqdm=False):
            completion = request.outputs[0]
            logps = [
                step[token].logprob
                for step, token in zip(completion.logprobs, completion.token_ids, strict=True)
            ]
            confidence = sum(logps) / len(logps) if logps else float("nan")
            generations.append(Generation(completion.text, confidence, len(logps)))
        return generations


def make_generator(model_dir: str | Path, backend: str = "auto") -> Any:
    """``transformers``, ``vllm``, or ``auto``: vLLM when it is importable and a CUDA GPU is present."""
    if backend not in ("auto", "transformers", "vllm"):
        raise ValueError(f"backend={backend!r} is not supported; choose auto, transformers or vllm.")
    if backend == "auto":
        import importlib.util

        backend = "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "transformers"
    return VLLMGenerator(model_dir) if backend == "vllm" else TransformersGenerator(model_dir)
