"""The study's held-out evaluation samples and scores with icpo eval's sampler and gives the numbers of an
independent reference: greedy decoding by ``model.generate``, the same samples scored by a forward pass."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from icpo.core import overconfident_error_rate, within_group_auroc
from icpo.static_sampler import StaticCacheSampler, left_pad
from icpo.study.heldout import EvalResult, evaluate, pass_at_k
from icpo.tasks import generate_problems


def parity(task_name, problems, texts):
    """A stand-in grader that splits every group: right when the completion has an even length."""
    return [len(text) % 2 == 0 for text in texts]


@torch.no_grad()
def reference_evaluate(model, tokenizer, problems, max_new_tokens: int, k: int) -> EvalResult:
    """The study's evaluation written out: greedy by ``generate``, samples scored by a forward pass."""
    model.eval()
    encoded = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
    width = encoded.input_ids.shape[1]
    common = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    greedy = model.generate(**encoded, do_sample=False, **common)
    texts = tokenizer.batch_decode(greedy[:, width:], skip_special_tokens=True)
    greedy_accuracy = sum(parity(None, problems, texts)) / len(problems)
    rows = [tokenizer(p.prompt)["input_ids"] for p in problems for _ in range(k)]
    input_ids, attention_mask = left_pad(rows, tokenizer.pad_token_id)
    sampled = StaticCacheSampler(model).sample(
        input_ids, attention_mask, max_new_tokens=max_new_tokens, eos_token_ids=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id, temperature=1.0,
    ).completion_ids  # fmt: skip
    confidence = torch.tensor([
        torch.log_softmax(model(torch.tensor([row + ids])).logits[0, len(row) - 1 : -1], -1)[
            torch.arange(len(ids)), ids
        ].mean().item()
        for row, ids in zip(rows, sampled, strict=True)
    ])  # fmt: skip
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in sampled]
    correct = torch.tensor(parity(None, None, texts))
    per_prompt = correct.reshape(len(problems), k).sum(dim=1).tolist()
    pass_at = {j: sum(pass_at_k(k, c, j) for c in per_prompt) / len(problems) for j in (1, 2, 4)}
    return EvalResult(
        greedy_accuracy,
        correct.float().mean().item(),
        overconfident_error_rate(confidence, correct, k),
        within_group_auroc(confidence, correct, k),
        pass_at,
    )


def test_evaluate_gives_the_numbers_of_the_former_study_code(tiny_policy, monkeypatch):
    monkeypatch.setattr("icpo.tasks.correctness", parity)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    # A trained policy never emits <pad>; keep this random one from it too (the former code ended a
    # completion at a sampled <pad>, the shared sampler only at EOS, as TRL's training loop does).
    pad = tokenizer.pad_token_id
    model.lm_head.register_forward_hook(
        lambda module, args, out: out.index_fill(-1, torch.tensor([pad]), -math.inf)
    )
    problems = generate_problems("addition", 12, seed=3, difficulty=2)
    torch.manual_seed(7)
    want = reference_evaluate(model, tokenizer, problems, max_new_tokens=6, k=4)
    torch.manual_seed(7)
    got = evaluate(model, tokenizer, "addition", problems, max_new_tokens=6, k=4)
    assert 0 < want.avg_at_k < 1 and not math.isnan(want.overconfident_error_rate)
    assert got.greedy_accuracy == want.greedy_accuracy and got.pass_at == pytest.approx(want.pass_at)
    assert (got.avg_at_k, got.overconfident_error_rate, got.within_group_auroc) == pytest.approx(
        (want.avg_at_k, want.overconfident_error_rate, want.within_group_auroc)
    )


def test_greedy_and_sampled_evaluation_share_one_copy_of_the_model_in_another_dtype(tiny_policy, monkeypatch):
    """A bf16 evaluation copies (and packs) the policy once, not once per sampling call."""
    from icpo.study.heldout import evaluate_prompts

    copies = []
    make_copy = StaticCacheSampler._make_copy
    monkeypatch.setattr(StaticCacheSampler, "_make_copy", lambda self: copies.append(self) or make_copy(self))
    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    prompts = [p.prompt for p in generate_problems("addition", 3, seed=3, difficulty=2)]
    result = evaluate_prompts(
        model, tokenizer, prompts, lambda rows, texts: [len(t) % 2 == 0 for t in texts], 6, k=4,
        add_special_tokens=True, dtype=torch.bfloat16,
    )  # fmt: skip
    assert len(copies) == 1 and set(result.pass_at) == {1, 2, 4}
