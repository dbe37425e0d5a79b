"""icpo.sampled_logps on a plain ``model.generate``, against a forward pass over the generated sequences."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from icpo.sampled_logps import SampledLogpsRecorder


@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
def test_recorded_log_probs_equal_a_forward_pass_over_the_generated_sequences(tiny_policy, temperature):
    model = AutoModelForCausalLM.from_pretrained(tiny_policy).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    eos = tokenizer.eos_token_id
    encoded = tokenizer(["1+2=", "123+4567=", "9"], return_tensors="pt", padding=True)  # left padding
    torch.manual_seed(0)
    with torch.no_grad(), SampledLogpsRecorder(model, temperature) as recorder:
        sequences = model.generate(
            **encoded, do_sample=True, temperature=temperature, top_k=10, top_p=0.9, max_new_tokens=12,
            repetition_penalty=1.2, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
        )  # fmt: skip
    generated = sequences[:, encoded["input_ids"].size(1) :]
    completion_ids = []
    for row in generated.tolist():
        completion_ids.append(row[: row.index(eos) + 1] if eos in row else row)
    recorded = recorder.per_token_logps(completion_ids)

    mask = torch.cat([encoded["attention_mask"], torch.ones_like(generated)], dim=1)
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=mask).logits[:, -generated.size(1) - 1 : -1]
    reference = (logits / temperature).log_softmax(-1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
    assert [len(r) for r in recorded] == [len(ids) for ids in completion_ids]
    for row, logps in enumerate(recorded):
        torch.testing.assert_close(logps, reference[row, : len(logps)], atol=2e-5, rtol=1e-5)


def test_a_recording_that_does_not_cover_the_completions_is_refused(tiny_policy):
    model = AutoModelForCausalLM.from_pretrained(tiny_policy).eval()
    with SampledLogpsRecorder(model, 1.0) as recorder:
        pass  # no generate ran
    assert recorder.per_token_logps([[5, 6, 7]]) is None
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SampledLogpsRecorder(model, 0.0)
