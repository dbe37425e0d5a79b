"""Held-out evaluation of a policy on a synthetic task (``icpo.tasks``): what the study measures.

Greedy accuracy on the held-out prompts; with ``k > 0`` also, from k samples per prompt at temperature 1,
avg@k, pass@j for j = 1, 2, 4, ... <= k, and the overconfident-error rate and within-group AUROC of the
samples' confidence (``icpo.core``; groups of k per prompt).
"""

from __future__ import annotations

import math
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
    """Greedy accuracy on ``problems``; with ``k > 0`` also, from k samples per prompt at temperature 1:
    avg@k (their mean accuracy), pass@j for j = 1, 2, 4, ... <= k (mean over prompts), and the
    overconfident-error rate and within-group AUROC of their confidence (groups of k per prompt)."""
    import torch

    from icpo.core import overconfident_error_rate, sequence_confidence, within_group_auroc
    from icpo.tasks import correctness

    was_training = model.training
    model.eval()
    encoded = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
    prompt_length = encoded.input_ids.shape[1]
    common = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad():
        greedy = model.generate(**encoded, do_sample=False, **common)
        texts = tokenizer.batch_decode(greedy[:, prompt_length:], skip_special_tokens=True)
        greedy_accuracy = sum(correctness(task_name, problems, texts)) / len(problems)
        avg_at_k = overconfident = auroc = float("nan")
        pass_at: dict[int, float] = {}
        if k > 0:
            sampled = model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                num_return_sequences=k,
                output_scores=True,
                return_dict_in_generate=True,
                **common,
            )
            completion_ids = sampled.sequences[:, prompt_length:]
            token_logps = model.compute_transition_scores(
                sampled.sequences, sampled.scores, normalize_logits=True
            )
            mask = _completion_mask(completion_ids, tokenizer.eos_token_id, tokenizer.pad_token_id)
            confidence = sequence_confidence(token_logps, mask)
            texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
            repeated = [problem for problem in problems for _ in range(k)]
            correct = torch.tensor(correctness(task_name, repeated, texts))
            avg_at_k = correct.float().mean().item()
            overconfident = overconfident_error_rate(confidence, correct, k)
            auroc = within_group_auroc(confidence, correct, k)
            per_prompt = correct.reshape(len(problems), k).sum(dim=1).tolist()
            for j in (2**e for e in range(k.bit_length()) if 2**e <= k):
                pass_at[j] = sum(pass_at_k(k, c, j) for c in per_prompt) / len(problems)
    model.train(was_training)
    return EvalResult(greedy_accuracy, avg_at_k, overconfident, auroc, pass_at)


def _completion_mask(completion_ids, eos_token_id: int, pad_token_id: int):
    """1 for generated tokens up to and including the first EOS, 0 for the padding after it."""
    import torch

    is_end = (completion_ids == eos_token_id) | (completion_ids == pad_token_id)
    ended_before = torch.cumsum(is_end.int(), dim=1) - is_end.int()
    return ((ended_before == 0) & (completion_ids != pad_token_id)).int()


def max_completion_chars(problems) -> int:
    """Room for the longest solution plus a few characters and the EOS token."""
    return max(len(p.solution) for p in problems) + 4
