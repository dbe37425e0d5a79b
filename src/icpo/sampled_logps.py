"""Log-probabilities of the sampled tokens, recorded while ``model.generate`` runs: confidence for free.

``SampledLogpsRecorder(model, temperature)`` is a context manager; one ``model.generate`` inside it is
observed through a forward hook on ``model``. At decoding step t the hook keeps the raw last-position logits
z_t (as ``generate`` reads them, before any logits processor); at step t+1 the model's input is the token
o_t that was sampled from them, and the hook stores

    log pi(o_t | q, o_<t) = log_softmax(z_t / temperature)[o_t]

which is exactly what TRL's scoring forward pass (``GRPOTrainer._get_per_token_logps_and_entropies``)
returns for the same token: the policy at the training temperature, NOT the distribution after top-k/top-p,
min-p, repetition penalties or ``min_new_tokens`` masking. Those processors change how we sample, not the
policy whose confidence ICPO scores and whose ratio GRPO clips, so the recorded value stays the same
whatever the sampling knobs. Per step only one ``(batch,)`` vector is kept (plus the last step's logits
row until the next step consumes it), never the vocabulary distribution of every step.

After ``generate`` returns, ``recorder.per_token_logps(completion_ids)`` gives each row's log-probs for the
tokens it kept (``completion_ids``: per row the generated tokens, up to and including the first EOS), or
None when the hook could not see what it needs (no ``logits`` or ``input_ids``, a row count or length that
does not match): the caller then falls back to a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class SampledLogpsRecorder:
    """Collects ``log_softmax(logits / temperature)[sampled token]`` per decoding step of one ``generate``."""

    def __init__(self, model: torch.nn.Module, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 to score sampled tokens, got {temperature}.")
        self.model = model
        self.temperature = float(temperature)
        self._steps: list[torch.Tensor] = []  # step t: (batch,) log-prob of the token sampled at step t
        self._pending: torch.Tensor | None = None  # last step's logits row, waiting for its sampled token
        self._usable = True
        self._handle = None

    def __enter__(self) -> SampledLogpsRecorder:
        self._handle = self.model.register_forward_hook(self._on_forward, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()

    def _token_logps(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        scaled = logits / self.temperature
        picked = scaled.gather(-1, tokens.to(scaled.device).unsqueeze(-1)).squeeze(-1)
        return picked - torch.logsumexp(scaled, dim=-1)

    @torch.no_grad()
    def _on_forward(self, module, args, kwargs, output) -> None:
        logits = getattr(output, "logits", None)
        input_ids = kwargs.get("input_ids")
        if logits is None or input_ids is None or logits.dim() != 3:
            self._usable = False
            return
        if self._pending is not None:
            if input_ids.size(0) != self._pending.size(0):
                self._usable = False
                return
            self._steps.append(self._token_logps(self._pending, input_ids[:, -1]))
        self._pending = logits[:, -1].to(dtype=torch.float32, copy=True)

    def per_token_logps(self, completion_ids: Sequence[Sequence[int]]) -> list[torch.Tensor] | None:
        """Per row, the log-probs of its ``completion_ids`` (a 1-D float32 tensor each), or None when the
        recording does not cover them (the caller must then compute them another way)."""
        rows = len(completion_ids)
        longest = max((len(ids) for ids in completion_ids), default=0)
        steps = list(self._steps)
        if len(steps) == longest - 1 and self._pending is not None:  # the last token has no next step
            last = torch.tensor(
                [ids[-1] if len(ids) == longest else 0 for ids in completion_ids],
                device=self._pending.device,
            )
            steps.append(self._token_logps(self._pending, last))
        if not self._usable or len(steps) < longest or (steps and steps[0].numel() != rows):
            return None
        table = torch.stack(steps, dim=1) if steps else torch.zeros(rows, 0)
        return [table[row, : len(ids)] for row, ids in enumerate(completion_ids)]
