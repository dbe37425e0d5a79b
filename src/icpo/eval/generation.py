"""Sampling with the model's own confidence: the one home of "sample and score" in icpo.

``sample_with_confidence(model, tokenizer, prompts, settings, seed)`` takes an already-loaded Hugging Face
causal LM and its tokenizer and returns, per prompt, a ``Generation``: the completion text, its number of
tokens, whether it finished (emitted an end-of-sequence token) or was cut at ``max_new_tokens``, and its
confidence c = icpo.core.sequence_confidence, the mean over completion tokens (the EOS token included,
anything after it excluded: ``completion_mask``) of log softmax(logits)[token], computed from the
model's raw logits, i.e. at temperature 1 whatever the sampling temperature or top-p, so confidence does
not depend on how we sample. Sampling is ``icpo.static_sampler`` (a static KV cache and inverse-CDF draws,
the log-probs recorded as it goes: memory holds one vocabulary row per sequence, never the
``[batch, tokens, vocabulary]`` logits of the whole completion); on CPU it is several times faster than
``model.generate`` (docs/performance.md).

Two backends behind one interface (``generate(prompts, settings, seed)`` and ``.tokenizer``):
``TransformersGenerator`` (any device, the one tested here; a thin owner of a model folder that calls
``sample_with_confidence``) and ``VLLMGenerator`` (used by ``make_generator`` when vllm is importable and
a CUDA GPU is present; its per-token log-probs are the raw model log-probs, vLLM's default
``logprobs_mode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from icpo.core import sequence_confidence
from icpo.static_sampler import StaticCacheSampler, left_pad, preferred_dtype


@dataclass(frozen=True)
class Generation:
    text: str
    confidence: float  # nan when the completion has no tokens
    num_tokens: int
    finished: bool  # True: ended with an EOS token; False: cut at max_new_tokens (truncated)


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0

    def validate(self) -> None:
        """One-line ValueError for settings no sampler accepts."""
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens (--max-new-tokens) must be >= 1, got {self.max_new_tokens}.")
        if not self.temperature >= 0:
            raise ValueError(
                f"temperature (--temperature) must be >= 0 (0 = greedy), got {self.temperature}."
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p (--top-p) must lie in (0, 1], got {self.top_p}.")


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends a completion: the model's generation config EOS id(s) and the
    tokenizer's EOS id."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def completion_mask(tokens: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """``[B, T]`` long mask: 1 for each generated token up to and including the first EOS of its row, 0
    after it (the padding ``generate`` appends to rows that ended early)."""
    is_eos = torch.isin(tokens, torch.tensor(list(eos_ids), dtype=tokens.dtype, device=tokens.device))
    is_eos = is_eos.long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before each position
    return (eos_before == 0).long()


@torch.no_grad()
def sample_with_confidence(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    settings: SamplingSettings,
    seed: int | None = None,
    add_special_tokens: bool = False,
    dtype: torch.dtype | None = None,
    sampler: StaticCacheSampler | None = None,
) -> list[Generation]:
    """One completion per prompt (repeat a prompt for k samples), batched with left padding.

    ``prompts`` are complete model inputs (a chat template already applied: ``add_special_tokens``
    False). ``seed`` re-seeds torch's global generator first (None: leave it as it is, e.g. inside
    training). ``dtype`` samples from a copy of the model in that dtype (``StaticCacheSampler``); pass
    ``sampler`` (built on ``model`` and ``dtype``) to reuse one copy over several calls. The model's
    train/eval mode is restored afterwards."""
    settings.validate()
    encoded = [tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"] for prompt in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, attention_mask = left_pad(encoded, pad_id)
    if seed is not None:
        torch.manual_seed(seed)
    sampled = (sampler or StaticCacheSampler(model, dtype)).sample(
        input_ids,
        attention_mask,
        max_new_tokens=settings.max_new_tokens,
        eos_token_ids=eos_token_ids(model, tokenizer),
        pad_token_id=pad_id,
        temperature=settings.temperature,
        top_p=settings.top_p,
        score_temperature=1.0,  # the raw logits' log-probs, whatever the sampling temperature or top-p
    )
    token_logps = torch.nn.utils.rnn.pad_sequence(sampled.token_logps, batch_first=True)
    lengths = torch.tensor([len(ids) for ids in sampled.completion_ids])
    mask = (torch.arange(token_logps.size(1)) < lengths.unsqueeze(1)).long()
    confidence = sequence_confidence(token_logps, mask).tolist()
    return [
        Generation(tokenizer.decode(ids, skip_special_tokens=True), c, len(ids), done)
        for ids, c, done in zip(sampled.completion_ids, confidence, sampled.finished, strict=True)
    ]


class TransformersGenerator:
    """A Hugging Face checkpoint folder (or an already-loaded model and tokenizer) behind the generator
    interface; ``generate`` is ``sample_with_confidence``."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        model: Any = None,
        tokenizer: Any = None,
    ):
        if model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            dtype = dtype or preferred_dtype(device)  # bf16 on a GPU or a CPU with bf16 arithmetic
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model.eval(), tokenizer

    def generate(self, prompts: Sequence[str], settings: SamplingSettings, seed: int) -> list[Generation]:
        return sample_with_confidence(self.model, self.tokenizer, prompts, settings, seed)


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
            finished = completion.finish_reason != "length"  # "length": cut at max_tokens
            generations.append(Generation(completion.text, confidence, len(logps), finished))
        return generations


def make_generator(model_dir: str | Path, backend: str = "auto") -> Any:
    """``transformers``, ``vllm``, or ``auto``: vLLM when it is importable and a CUDA GPU is present."""
    if backend not in ("auto", "transformers", "vllm"):
        raise ValueError(f"backend={backend!r} is not supported; choose auto, transformers or vllm.")
    if backend == "auto":
        import importlib.util

        backend = "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "transformers"
    return VLLMGenerator(model_dir) if backend == "vllm" else TransformersGenerator(model_dir)
