"""Fast sampling for small models on CPU: a static KV cache, a cheap sampler, free log-probs.

``transformers``' ``generate`` spends most of a CPU decode step outside the model's arithmetic: the
dynamic cache concatenates every layer's keys and values at every step, and ``torch.multinomial`` draws
one exponential variate per vocabulary entry (50 ms per step for 32 rows x 49k tokens here). This module
runs the same model forward with ``transformers.StaticCache`` (written in place) and draws each token by
inverting the cumulative distribution with one uniform number per row:

    p = softmax(filter(z_t / T)),   o_t = min{ v : sum_{u <= v} p_u > U * sum_u p_u },   U ~ Uniform[0, 1)

which samples exactly from p (``filter``: top-k, then top-p, as in ``transformers``). ``T = 0`` is greedy.
Alongside it records, for every sampled token,

    log pi(o_t | q, o_<t) = log_softmax(z_t / score_temperature)[o_t]

the raw-logit log-prob at the scoring temperature (the policy TRL scores and ICPO ranks; not the filtered
distribution), so confidences cost nothing.

With ``dtype`` (``StaticCacheSampler(model, dtype=torch.bfloat16)``) sampling runs on a copy of the model in
that dtype, the way a vLLM engine holds its own copy of the policy: the copy is made once and its
parameters that require grad are refreshed from ``model`` before each call (frozen ones never change).
On a CPU with bf16 arithmetic in hardware (``preferred_dtype``) that halves the weight traffic that bounds a decode
step, and the copy's linear weights are kept pre-packed for oneDNN (``PackedLinear``), which saves the
re-layout ``F.linear`` does at every call.

Rows are left-padded; a row that emitted an EOS token keeps emitting padding, and sampling stops when
every row has finished or after ``max_new_tokens``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


@functools.cache
def cpu_info(field: str) -> str:
    """The value of ``field`` (e.g. ``model name``, ``flags``) for the first CPU in /proc/cpuinfo ("" when
    it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == field:
                return value.strip()
    except OSError:
        pass
    return ""


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_bf16_arithmetic() -> bool:
    """True when this CPU computes bf16 products in hardware: Intel AMX tiles (``amx_bf16``) or the AVX-512
    bf16 dot-product instructions (``avx512_bf16``: AMD Zen 4 and later, Intel Cooper Lake) in /proc/cpuinfo.

    Measured (docs/performance.md): a 2048^3 matmul in bf16 runs 6x (AMX Xeon) and 4.6x (EPYC, avx512_bf16)
    faster than in float32; without either flag torch emulates bf16 and it is slower than float32."""
    flags = set(cpu_info("flags").split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def preferred_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """The fastest sound compute dtype here: bf16 on a GPU that supports it or a CPU with bf16 arithmetic
    in hardware (``cpu_has_bf16_arithmetic``), else float32."""
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16_arithmetic() else torch.float32


@dataclass(frozen=True)
class SampledBatch:
    """Per row: the completion tokens (up to and including the first EOS), each token's log-prob at the
    scoring temperature (float32), and whether the row ended with an EOS (False: cut at the limit)."""

    completion_ids: list[list[int]]
    token_logps: list[torch.Tensor]
    finished: list[bool]


def left_pad(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``rows`` left-padded to the longest one."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            input_ids[index, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
            attention_mask[index, width - len(row) :] = 1
    return input_ids, attention_mask


def filtered_probabilities(scaled_logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """softmax of ``scaled_logits`` (``[B, V]``) restricted to the top-k tokens (``top_k`` 0: no cut) and then to
    the smallest set whose mass reaches ``top_p`` (the most likely token always stays)."""
    logits = scaled_logits.float()
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return probs


def draw(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row from unnormalised ``probs`` ``[B, V]``, by inverse CDF at ``uniform`` ``[B]`` in [0, 1)."""
    cdf = probs.cumsum(dim=-1)
    target = (uniform.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=probs.size(-1) - 1)


def can_pack_linear_weights(dtype: torch.dtype, device: torch.device) -> bool:
    """True where oneDNN can hold bf16 linear weights pre-packed (a CPU build of torch with mkldnn)."""
    return dtype == torch.bfloat16 and device.type == "cpu" and torch.backends.mkldnn.is_available()


class PackedLinear(torch.nn.Module):
    """An inference-only ``nn.Linear`` whose bf16 weight is kept in oneDNN's blocked layout.

    ``F.linear`` on CPU re-lays the weight out at every call, which in a decode step (32 rows) costs more
    than the product itself; packing once per refresh removes that. Same arithmetic as ``F.linear``."""

    def __init__(self, linear: torch.nn.Linear, rows_hint: int = 32) -> None:
        super().__init__()
        self.rows_hint = rows_hint
        self.refresh(linear)

    @torch.no_grad()
    def refresh(self, linear: torch.nn.Linear) -> None:
        """Pack ``linear``'s current weight (and copy its bias) in bf16."""
        weight = linear.weight.detach().to(torch.bfloat16)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, self.rows_hint)
        self.bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


class StaticCacheSampler:
    """Samples completions of a Hugging Face causal LM (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.dtype = dtype
        self._copy: torch.nn.Module | None = None
        self._packed: list[tuple[torch.nn.Linear, PackedLinear]] = []  # (the policy's layer, its packed copy)

    def _make_copy(self) -> torch.nn.Module:
        """The policy in ``dtype``, its linear layers packed where oneDNN can (``PackedLinear``)."""
        copied = copy.deepcopy(self.model).to(self.dtype).eval().requires_grad_(False)
        # accelerate's mixed precision patches the instance's forward (autocast, outputs cast to float32):
        # the copy computes in its own dtype and uses the class's forward.
        copied.__dict__.pop("forward", None)
        device = next(copied.parameters()).device
        if can_pack_linear_weights(self.dtype, device):
            sources = dict(self.model.named_modules())
            for name, parent in list(copied.named_modules()):
                for child_name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Linear):
                        packed = PackedLinear(child)
                        setattr(parent, child_name, packed)
                        self._packed.append((sources[f"{name}.{child_name}" if name else child_name], packed))
        return copied

    def _sampling_model(self) -> torch.nn.Module:
        """``model`` itself, or its copy in ``dtype`` with the trainable parameters refreshed."""
        if self.dtype is None or next(self.model.parameters()).dtype == self.dtype:
            return self.model
        if self._copy is None:
            self._copy = self._make_copy()
            return self._copy
        with torch.no_grad():
            targets = dict(self._copy.named_parameters())
            for name, source in self.model.named_parameters():
                if source.requires_grad and name in targets:
                    targets[name].copy_(source)
            for linear, packed in self._packed:
                if any(parameter.requires_grad for parameter in linear.parameters()):
                    packed.refresh(linear)
        return self._copy

    @torch.no_grad()
    def sample(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        score_temperature: float = 1.0,
    ) -> SampledBatch:
        """Sample one completion per row of the left-padded ``input_ids`` (``[B, P]``, mask ``[B, P]``).

        Random numbers come from torch's global generator (seed it for reproducible samples)."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        if not score_temperature > 0:
            raise ValueError(f"score_temperature must be > 0, got {score_temperature}.")
        from transformers import StaticCache

        model = self._sampling_model()
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            rows, prompt_width = input_ids.shape
            cache = StaticCache(config=model.config, max_cache_len=prompt_width + max_new_tokens)
            positions = (attention_mask.cumsum(dim=-1) - 1).clamp_(min=0)
            mask = torch.cat([attention_mask, attention_mask.new_ones(rows, max_new_tokens)], dim=1)
            logits = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            next_position = positions[:, -1]
            eos = torch.tensor(sorted(set(eos_token_ids)), device=device)
            done = torch.zeros(rows, dtype=torch.bool, device=device)
            tokens, logps = [], []
            for step in range(max_new_tokens):
                logits = logits.float()
                if temperature > 0:
                    probs = filtered_probabilities(logits / temperature, top_k, top_p)
                    token = draw(probs, torch.rand(rows, device=device))
                else:
                    token = logits.argmax(dim=-1)
                token = token.masked_fill(done, pad_token_id)
                scaled = logits / score_temperature
                picked = scaled.gather(-1, token.unsqueeze(-1)).squeeze(-1)
                logps.append(picked - torch.logsumexp(scaled, dim=-1))
                tokens.append(token)
                done |= torch.isin(token, eos)
                if bool(done.all()) or step == max_new_tokens - 1:
                    break
                next_position = next_position + 1
                logits = model(
                    input_ids=token.unsqueeze(-1),
                    attention_mask=mask[:, : prompt_width + step + 1],
                    position_ids=next_position.unsqueeze(-1),
                    cache=cache,
                    use_cache=True,
                    cache_position=torch.tensor([prompt_width + step], device=device),
                ).logits[:, -1]
        finally:
            model.train(was_training)
        return _kept_rows(torch.stack(tokens, dim=1), torch.stack(logps, dim=1), eos)


def _kept_rows(tokens: torch.Tensor, logps: torch.Tensor, eos: torch.Tensor) -> SampledBatch:
    """Cut each row after its first EOS token."""
    is_eos = torch.isin(tokens, eos)
    finished = is_eos.any(dim=1)
    lengths = torch.where(finished, is_eos.int().argmax(dim=1) + 1, tokens.size(1)).tolist()
    return SampledBatch(
        completion_ids=[row[:n].tolist() for row, n in zip(tokens.cpu(), lengths, strict=True)],
        token_logps=[row[:n].float().cpu() for row, n in zip(logps, lengths, strict=True)],
        finished=finished.tolist(),
    )
