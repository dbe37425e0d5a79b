"""``sample_with_confidence``: the one sampler with confidence, on an already-loaded model."""

from __future__ import annotations

import pytest
import torch

from icpo.eval.generation import SamplingSettings, completion_mask, sample_with_confidence


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
