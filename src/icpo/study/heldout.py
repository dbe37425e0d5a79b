"""Held-out evaluation of a policy on a synthetic task (``icpo.tasks``): what the study measures.

Greedy accuracy on the held-out prompts; with ``k > 0`` also, from k samples per prompt at temperature 1,
avg@k, pass@j for j = 1, 2, 4, ... <= k, and the overconfident-error rate and within-group AUROC of the
samples' confidence (``icpo.core``; groups of k per prompt).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class EvalResult:
    greedy_accuracy: float
    avg_at_k: float
    overconfident_error_rate: float
    within_group_auroc: float = float("nan")
    pass_at: dict[int, float] = field(default_factory=dict)


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n - c, k) / C(n, k) (Chen et al. 2021)."""
    if not 1 <= k <= num_samples:
        raise ValueError(f"pass@k needs 1 <= k <= n samples, got k={k}, n={num_samples}.")
    return 1.0 - math.comb(num_samples - num_correct, k) / math.comb(num_samples, k)


def evaluate(model, tokenizer, task_name: str, problems, max_new_tokens: int, k: int = 0) -> EvalResult:
    """``evaluate_prompts`` on a synthetic task's held-out ``problems`` (plain-text prompts with the tokenizer's
    special tokens, the task's exact checker, samples at temperature 1)."""
    from icpo.tasks import correctness

    return evaluate_prompts(
        model,
        tokenizer,
        [p.prompt for p in problems],
        lambda rows, texts: correctness(task_name, [problems[row] for row in rows], texts),
        max_new_tokens,
        k,
        add_special_tokens=True,
    )


def evaluate_prompts(
    model,
    tokenizer,
    prompts: list[str],
    grade: Callable[[list[int], list[str]], list[bool]],
    max_new_tokens: int,
    k: int = 0,
    temperature: float = 1.0,
    add_special_tokens: bool = False,
    dtype=None,
) -> EvalResult:
    """The study's one held-out evaluator: greedy accuracy on ``prompts``; with ``k > 0`` also, from k
    samples per prompt at ``temperature``: avg@k (their mean accuracy), pass@j for j = 1, 2, 4, ... <= k
    (mean over prompts), and the overconfident-error rate and within-group AUROC of their confidence
    (groups of k per prompt). ``grade(prompt_indices, completions)`` says which completions are right.
    Sampling and confidence: ``icpo.eval.generation.sample_with_confidence``, as ``icpo eval`` (``dtype``:
    sample from a copy of the model in that dtype)."""
    import torch

    from icpo.core import overconfident_error_rate, within_group_auroc
    from icpo.eval.generation import SamplingSettings, sample_with_confidence
    from icpo.static_sampler import StaticCacheSampler

    sampler = StaticCacheSampler(model, dtype)  # one copy of the model in ``dtype`` for both calls

    def sample(rows: list[str], sampling_temperature: float):
        settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=sampling_temperature)
        return sample_with_confidence(
            model,
            tokenizer,
            rows,
            settings,
            add_special_tokens=add_special_tokens,
            dtype=dtype,
            sampler=sampler,
        )

    greedy = sample(prompts, 0.0)
    greedy_accuracy = sum(grade(list(range(len(prompts))), [g.text for g in greedy])) / len(prompts)
    if k == 0:
        return EvalResult(greedy_accuracy, math.nan, math.nan)
    sampled = sample([prompt for prompt in prompts for _ in range(k)], temperature)
    rows = [row for row in range(len(prompts)) for _ in range(k)]
    correct = torch.tensor(grade(rows, [g.text for g in sampled]))
    confidence = torch.tensor([g.confidence for g in sampled])
    per_prompt = correct.reshape(len(prompts), k).sum(dim=1).tolist()
    pass_at = {
        j: sum(pass_at_k(k, c, j) for c in per_prompt) / len(prompts)
        for j in (2**e for e in range(k.bit_length()))
    }
    return EvalResult(
        greedy_accuracy,
        correct.float().mean().item(),
        overconfident_error_rate(confidence, correct, k),
        within_group_auroc(confidence, correct, k),
        pass_at,
    )


def max_completion_chars(problems) -> int:
    """Room for the longest solution plus a few characters and the EOS token."""
    return max(len(p.solution) for p in problems) + 4
