"""``sample_with_confidence``: the one sampler with confidence, on an already-loaded model."""

from __future__ import annotations

import pytest
import torch

from icpo.eval.generation import SamplingSettings, completion_mask, sample_with_confidence
from icpo.static_sampler import StaticCacheSampler


def test_completion_mask_keeps_tokens_up_to_and_including_the_first_eos():
    tokens = torch.tensor([[5, 6, 2, 0, 0], [5, 2, 2, 7, 0], [5, 6, 7, 8, 9]])
    assert completion_mask(tokens, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert completion_mask(tokens, [2, 9]).tolist()[2] == [1, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def loaded(tiny_policy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_policy), AutoTokenizer.from_pretrained(tiny_policy)


def test_finished_means_an_eos_was_emitted_and_truncated_ones_fill_the_limit(loaded):
    model, tokenizer = loaded
    greedy = SamplingSettings(max_new_tokens=6, temperature=0.0)
    cut = sample_with_confidence(model, tokenizer, ["12+34="], greedy)[0]
    assert not cut.finished and cut.num_tokens == 6, "the random policy runs to the limit"
    first_token = tokenizer(cut.text, add_special_tokens=False).input_ids[0]
    configured = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = first_token  # now its first token ends the completion
    try:
        ended = sample_with_confidence(model, tokenizer, ["12+34="], greedy)[0]
    finally:
        model.generation_config.eos_token_id = configured
    assert ended.finished and ended.num_tokens == 1
    assert ended.confidence == pytest.approx(cut_first_logp(model, tokenizer, "12+34=", first_token))


def cut_first_logp(model, tokenizer, prompt, token) -> float:
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        return torch.log_softmax(model(ids).logits[0, -1].float(), -1)[token].item()


def test_model_mode_and_padding_side_are_restored(loaded):
    model, tokenizer = loaded
    model.train()
    tokenizer.padding_side = "right"
    try:
        sample_with_confidence(model, tokenizer, ["1+1=", "x"], SamplingSettings(3, 1.0), seed=0)
        assert model.training and tokenizer.padding_side == "right"
    finally:
        model.eval()
        tokenizer.padding_side = "left"


def test_the_same_seed_gives_the_same_samples(loaded):
    model, tokenizer = loaded
    first = sample_with_confidence(model, tokenizer, ["7+8="] * 4, SamplingSettings(5, 1.0), seed=3)
    again = sample_with_confidence(model, tokenizer, ["7+8="] * 4, SamplingSettings(5, 1.0), seed=3)
    assert first == again


def forward_pass_confidence(model, tokenizer, prompt: str, completion_ids: list[int]) -> float:
    """The reference: mean log softmax(raw logits)[token] over the completion, by one forward pass."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0].float()
    logps = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    return logps.gather(1, torch.tensor(completion_ids).unsqueeze(1)).mean().item()


def test_confidence_is_the_raw_log_prob_mean_up_to_the_first_eos(loaded, monkeypatch):
    """Left-padded prompts of different lengths, sampled at T = 0.7 with top-p; rows that end early: each
    confidence equals the forward-pass mean over the completion's tokens (EOS included) at temperature 1."""
    model, tokenizer = loaded
    prompts = ["1+1=", "12+34=", "7+8=", "99+1="] * 2
    settings = SamplingSettings(max_new_tokens=6, temperature=0.7, top_p=0.9)
    sample, recorded = StaticCacheSampler.sample, []

    def recording_sample(self, *args, **kwargs):
        result = sample(self, *args, **kwargs)
        recorded.append(result.completion_ids)
        return result

    monkeypatch.setattr(StaticCacheSampler, "sample", recording_sample)
    sample_with_confidence(model, tokenizer, prompts, settings, seed=1)
    sampled = recorded[0]
    eos = sampled[0][2]  # now row 0 ends by its third token
    monkeypatch.setattr(model.generation_config, "eos_token_id", eos)
    generations = sample_with_confidence(model, tokenizer, prompts, settings, seed=1)
    assert generations[0].finished and generations[0].num_tokens <= 3
    assert not all(g.finished for g in generations)
    stops = {eos, tokenizer.eos_token_id}
    for prompt, generation, tokens in zip(prompts, generations, sampled, strict=True):
        ends = [index for index, token in enumerate(tokens) if token in stops]
        kept = tokens[: ends[0] + 1] if ends else tokens
        assert generation.num_tokens == len(kept) and generation.finished == bool(ends)
        expected = forward_pass_confidence(model, tokenizer, prompt, kept)
        assert generation.confidence == pytest.approx(expected, abs=2e-5)
