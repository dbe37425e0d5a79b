"""icpo.static_sampler against transformers' own generate, forward pass and logits warpers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from icpo.static_sampler import StaticCacheSampler, draw, filtered_probabilities, left_pad

PROMPTS = ["1+2=", "12+345=", "7=", "100+2000=", "9+9="]


@pytest.fixture(scope="module")
def policy(tiny_policy):
    """The tiny policy with its EOS logit raised along the final norm's gain, so that some greedy and sampled
    completions end early and others run to the limit."""
    model = AutoModelForCausalLM.from_pretrained(tiny_policy).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] += 0.3 * model.model.norm.weight
    return model, tokenizer


def encoded(tokenizer, prompts=PROMPTS):
    return left_pad(
        [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], tokenizer.pad_token_id
    )


def test_greedy_completions_equal_transformers_generate(policy):
    model, tokenizer = policy
    input_ids, attention_mask = encoded(tokenizer)
    eos = tokenizer.eos_token_id
    sampled = StaticCacheSampler(model).sample(
        input_ids, attention_mask, max_new_tokens=12, eos_token_ids=[eos], pad_token_id=tokenizer.pad_token_id,
        temperature=0,
    )  # fmt: skip
    reference = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12, do_sample=False,
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
    )[:, input_ids.size(1) :].tolist()  # fmt: skip
    expected = [row[: row.index(eos) + 1] if eos in row else row for row in reference]
    assert sampled.completion_ids == expected
    assert sampled.finished == [eos in row for row in expected]
    assert any(sampled.finished) and not all(sampled.finished), "need rows ending early and at the limit"


@pytest.mark.parametrize("score_temperature", [1.0, 0.7])
def test_recorded_log_probs_equal_a_forward_pass_at_the_scoring_temperature(policy, score_temperature):
    model, tokenizer = policy
    input_ids, attention_mask = encoded(tokenizer, PROMPTS * 2)
    torch.manual_seed(0)
    sampled = StaticCacheSampler(model).sample(
        input_ids, attention_mask, max_new_tokens=10, eos_token_ids=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id, temperature=1.2, top_k=30, top_p=0.95,
        score_temperature=score_temperature,
    )  # fmt: skip
    for prompt, completion, logps in zip(
        PROMPTS * 2, sampled.completion_ids, sampled.token_logps, strict=True
    ):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        logits = model(torch.tensor([prompt_ids + completion])).logits[0, len(prompt_ids) - 1 : -1]
        reference = torch.log_softmax(logits / score_temperature, dim=-1)[
            torch.arange(len(completion)), completion
        ]
        torch.testing.assert_close(logps, reference, atol=2e-5, rtol=1e-5)


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(policy):
    model, tokenizer = policy
    input_ids, attention_mask = encoded(tokenizer)
    sampler = StaticCacheSampler(model)

    def sample(seed):
        torch.manual_seed(seed)
        return sampler.sample(
            input_ids, attention_mask, max_new_tokens=8, eos_token_ids=[tokenizer.eos_token_id],
            pad_token_id=tokenizer.pad_token_id, temperature=1.0,
        ).completion_ids  # fmt: skip

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


@settings(max_examples=30, deadline=None)
@given(
    logits=st.lists(st.floats(-8, 8), min_size=2, max_size=12),
    top_k=st.integers(0, 12),
    top_p=st.floats(0.05, 1.0),
)
def test_filtering_matches_transformers_logits_warpers(logits, top_k, top_p):
    scaled = torch.tensor([logits])
    warped = scaled.clone()
    if 0 < top_k < len(logits):
        warped = TopKLogitsWarper(top_k)(None, warped)
    if top_p < 1.0:
        warped = TopPLogitsWarper(top_p)(None, warped)
    expected = torch.softmax(warped, dim=-1)
    ours = filtered_probabilities(scaled, top_k, top_p)
    ours = ours / ours.sum()
    if torch.equal(ours > 0, expected > 0):
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    elif (ours > 0).sum() == (expected > 0).sum():  # tied logits at the cut: either may stay
        torch.testing.assert_close(ours.sort().values, expected.sort().values, atol=1e-6, rtol=1e-5)
    else:  # a boundary token whose cumulative mass equals top_p up to float rounding
        assert abs(int((ours > 0).sum()) - int((expected > 0).sum())) == 1


def test_inverse_cdf_draws_follow_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.2, 0.3], [0.0, 0.0, 0.0, 1.0]]).repeat(20_000, 1)
    generator = torch.Generator().manual_seed(0)
    tokens = draw(probs * 3.0, torch.rand(probs.size(0), generator=generator))  # unnormalised on purpose
    first, second = tokens[0::2], tokens[1::2]
    frequencies = torch.bincount(first, minlength=4).float() / first.numel()
    torch.testing.assert_close(frequencies, torch.tensor([0.5, 0.0, 0.2, 0.3]), atol=0.015, rtol=0)
    assert (second == 3).all()
    assert (
        draw(torch.tensor([[0.2, 0.8]]), torch.tensor([0.0])).item() == 0
    )  # u = 0: the first token with mass
    assert (
        draw(torch.tensor([[0.2, 0.8, 0.0]]), torch.tensor([1 - 1e-7])).item() == 1
    )  # never a zero-mass token


def test_a_low_precision_copy_follows_the_trained_parameters_only(policy):
    model, tokenizer = policy
    model = AutoModelForCausalLM.from_pretrained(model.name_or_path).eval()
    model.requires_grad_(False).lm_head.requires_grad_(True)
    sampler = StaticCacheSampler(model, dtype=torch.bfloat16)
    input_ids, _ = encoded(tokenizer)

    def logits(sampling_model):
        with torch.no_grad():
            return sampling_model(input_ids=input_ids).logits

    copied = sampler._sampling_model()
    assert copied is not model and next(copied.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        model.lm_head.weight.mul_(-1.5)  # trained: the copy follows it
    refreshed = logits(sampler._sampling_model())
    assert sampler._sampling_model() is copied
    torch.testing.assert_close(refreshed, logits(StaticCacheSampler(model, torch.bfloat16)._sampling_model()))
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.add_(1.0)  # frozen: the copy keeps what it was made with
    torch.testing.assert_close(logits(sampler._sampling_model()), refreshed)
    assert model.lm_head.weight.dtype == torch.float32  # the policy itself is untouched
    bf16_reference = logits(model.to(torch.bfloat16))  # the packed copy computes what a bf16 model does
    assert (
        logits(StaticCacheSampler(model.float(), torch.bfloat16)._sampling_model()) - bf16_reference
    ).abs().max() < 0.05


def test_the_copy_drops_a_forward_patched_on_the_instance(policy):
    """accelerate's mixed precision wraps the policy's forward in autocast and casts outputs to float32;
    the copy must compute in its own dtype (that wrapper made sampling 1.5x slower)."""
    model, tokenizer = policy
    model = AutoModelForCausalLM.from_pretrained(model.name_or_path).eval()
    calls = []
    model.forward = lambda *args, **kwargs: calls.append(1) or type(model).forward(model, *args, **kwargs)
    sampler = StaticCacheSampler(model, dtype=torch.bfloat16)
    input_ids, attention_mask = encoded(tokenizer)
    sampler.sample(input_ids, attention_mask, max_new_tokens=3, eos_token_ids=[tokenizer.eos_token_id],
                   pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    assert calls == [] and "forward" not in sampler._sampling_model().__dict__


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx2 avx512f amx_bf16 amx_tile", torch.bfloat16),  # Intel Sapphire Rapids and later
        ("fpu sse avx2 avx512f avx512_bf16", torch.bfloat16),  # AMD Zen 4 and later, Intel Cooper Lake
        ("fpu sse avx2 avx512f avx512_vnni", torch.float32),  # no bf16 products: torch emulates them
        ("", torch.float32),  # /proc/cpuinfo unreadable
    ],
)
def test_cpus_get_bf16_only_where_they_compute_it_in_hardware(monkeypatch, flags, expected):
    import icpo.static_sampler as static_sampler

    monkeypatch.setattr(static_sampler, "cpu_info", lambda field: flags if field == "flags" else "")
    assert static_sampler.preferred_dtype("cpu") == expected
