"""ICPO advantage math: small, pure, vectorised torch functions, free of any engine.

Every function works on a flat batch laid out as consecutive groups of ``group_size`` rows
(rows ``[k*G, (k+1)*G)`` are the G sampled responses to prompt k), the layout TRL and verl use.

The algorithm, top to bottom (docs/method.md has the full story):

1. confidence      c_i = (1/L_i) * sum_t log pi_old(o_t | q, o_<t)             ``sequence_confidence``
2. preference      p_i in [0, 1], larger for LOWER confidence (``direction="low"``) ``preference_scores``
     bt:   z = (c - mean_g c) / (std_g c + eps),  p_i = mean_{j != i} sigmoid((z_j - z_i) / tau)
     rank: p_i = 1 - k_i / (G' - 1),  k_i the ascending rank of c_i (ties share the mean rank)
3. combination                                                                   ``icpo_advantages``
     reward:    A = GRPO(r + alpha * p)
     advantage: A = GRPO(r) + alpha * (p - mean_g p)
     fallback:  A = GRPO(r) + alpha * (p - mean_g p) * [all rewards of the group are equal]
                (ours, not the paper's: the preference acts only where GRPO has no signal)
     unlikeliness: A = GRPO(r * (1 - alpha * k_i / G)),  k_i the ascending confidence rank (0 = least
                likely); He, Fried and Welleck's unlikeliness reward (arXiv 2506.02355), not ICPO
   with GRPO(x)_i = (x_i - mean_g x) / (std x + eps), std over the group ("group"), the batch
   ("batch"), or no scaling ("none"). alpha = 0 gives GRPO exactly (``grpo_advantages``).

Inputs are tensors; a list or a numpy array is taken through ``torch.as_tensor`` (anything else is a
TypeError naming the argument). Option values are checked once, in ``ICPOOptions.validate``'s terms: a
bool, a string or NaN where a number belongs is refused with a message naming the option.

Precision: the arithmetic is float32 (TRL's, bit for bit) unless an input needs more: a float64 input, an
integer input beyond float32's exact range (2**24), or a magnitude whose squared deviations overflow
float32 (above 1e18) is computed in float64. Results are float64 when an input was float64, else float32.

Invalid inputs never poison a group:
- a NaN (or infinite) reward marks an unscorable row: its advantage is exactly 0 and it is left out
  of the group mean and std (TRL's convention) and of the preference step;
- a row whose confidence is not finite (no completion tokens, a -inf log-prob) takes no part in the
  preference step and gets the neutral score 0.5, which is the group mean of p for both methods;
- nothing non-finite leaves ``preference_scores`` or the advantage functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Literal, get_args, get_origin, get_type_hints

import torch

# The choices of each ICPO option: the Literal types are the one list; the tuples are read from them.
Method = Literal["bt", "rank"]
Combine = Literal["reward", "advantage", "fallback", "unlikeliness"]
Direction = Literal["low", "high"]
Schedule = Literal["constant", "linear"]
Scale = Literal["group", "batch", "none"]

METHODS: tuple[str, ...] = get_args(Method)
COMBINES: tuple[str, ...] = get_args(Combine)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
SCALES: tuple[str, ...] = get_args(Scale)

NEUTRAL_PREFERENCE = 0.5


def _option(default: Any, help: str, minimum: float | None = None, above: float | None = None) -> Any:
    """An ``ICPOOptions`` field: its default, its help text, and for a number its lower bound
    (``minimum``: value >= minimum, ``above``: value > above). A Literal type gives the choices."""
    return field(default=default, metadata={"help": help, "minimum": minimum, "above": above})


@dataclass(frozen=True)
class ICPOOptions:
    """The ICPO options: the one list of their names, types, choices, defaults and help texts.

    Every engine takes them whole: ``icpo.trl.ICPOConfig`` (as ``icpo_<name>``, the schedule as
    ``icpo_alpha_schedule``), verl's ``algorithm.icpo.<name>`` (``icpo.verl.estimator.ICPOSettings``), and the
    flags of ``icpo demo``/``icpo compare``. The defaults are the ones docs/results.md chose from measurements.
    """

    alpha: float = _option(
        0.5, "weight of the confidence preference score; 0 gives GRPO exactly", minimum=0.0
    )
    schedule: Schedule = _option("constant", "alpha schedule: constant, or linear decay to 0 over the run")
    method: Method = _option(
        "bt", "preference score: bt (Bradley-Terry over z-scored confidence) or rank (confidence rank)"
    )
    tau: float = _option(1.0, "temperature of the Bradley-Terry comparison (method bt)", above=0.0)
    combine: Combine = _option(
        "advantage",
        "advantage: GRPO(r) + alpha (p - mean p); reward: GRPO(r + alpha p); fallback (ours): advantage in "
        "groups whose rewards are all equal, plain GRPO elsewhere; unlikeliness (He et al. 2025, a peer "
        "method): GRPO(r (1 - alpha k / G)), k the ascending confidence rank",
    )
    direction: Direction = _option(
        "low", "low favours the less confident responses (the paper); high reverses it (ablation)"
    )
    correct_threshold: float = _option(
        0.5, "diagnostics only: a reward at or above it counts as a correct answer"
    )

    def validate(self, spelt: Callable[[str], str] = str) -> None:
        """Raise a ValueError naming the first bad option as the user spelt it: ``spelt(name)``
        (``"icpo_alpha"`` in a TRL config, ``"algorithm.icpo.alpha"`` in verl's, ``"--alpha"`` on the CLI)."""
        for option in fields(self):
            value = getattr(self, option.name)
            if option.name in OPTION_CHOICES:
                check_choice(spelt(option.name), value, OPTION_CHOICES[option.name])
            else:
                check_number(spelt(option.name), value, option.metadata["minimum"], option.metadata["above"])

    def alpha_at(self, step: int, total_steps: int) -> float:
        """alpha in force at ``step`` of ``total_steps`` under this schedule (``scheduled_alpha``)."""
        return scheduled_alpha(self.alpha, self.schedule, step, total_steps)

    def advantages(
        self,
        rewards: torch.Tensor,
        confidence: torch.Tensor,
        group_size: int,
        alpha: float,
        scale: Scale = "group",
        eps: float = 1e-4,
    ) -> torch.Tensor:
        """``icpo_advantages`` with these options and the ``alpha`` in force (see ``alpha_at``)."""
        return icpo_advantages(
            rewards,
            confidence,
            group_size,
            alpha=alpha,
            method=self.method,
            tau=self.tau,
            direction=self.direction,
            combine=self.combine,
            scale=scale,
            eps=eps,
        )


OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in fields(ICPOOptions))
OPTION_TYPES: dict[str, Any] = get_type_hints(ICPOOptions)
# The choices of every option with a Literal type, e.g. OPTION_CHOICES["method"] == METHODS.
OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    name: get_args(kind) for name, kind in OPTION_TYPES.items() if get_origin(kind) is Literal
}


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if not (isinstance(value, str) and value in choices):
        raise ValueError(f"{name}={value!r} is not supported; choose one of {choices}.")


def check_number(name: str, value: Any, minimum: float | None = None, above: float | None = None) -> None:
    """Raise a ValueError unless ``value`` is a finite real number (not a bool, not a string) within the
    bound: ``>= minimum`` or ``> above``."""
    bound = f" >= {minimum:g}" if minimum is not None else f" > {above:g}" if above is not None else ""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above)
    if not ok:
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` as a tensor: a tensor as it is, a list or a numpy array through ``torch.as_tensor``;
    anything else is a TypeError naming the argument."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name} must be a tensor, a numpy array or a list of numbers, got {type(value).__name__} "
            f"{value!r:.60}."
        ) from None


_FLOAT32_EXACT_INTEGERS = 2**24  # every integer up to this is a float32
_FLOAT32_SAFE_MAGNITUDE = 1e18  # squared deviations of larger values overflow float32 (max 3.4e38)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when an input holds more than float32 can: float64 values, integers past 2**24, or finite
    magnitudes past 1e18 (whose group variance overflows float32); float32 otherwise."""
    for tensor in tensors:
        if tensor.dtype == torch.float64:
            return torch.float64
        if tensor.dtype == torch.bool or tensor.numel() == 0:
            continue
        limit = _FLOAT32_SAFE_MAGNITUDE if tensor.is_floating_point() else _FLOAT32_EXACT_INTEGERS
        values = tensor[torch.isfinite(tensor)] if tensor.is_floating_point() else tensor
        if values.numel() and values.abs().max() > limit:
            return torch.float64
    return torch.float32


def _output_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when an input was float64, else float32."""
    return torch.float64 if any(tensor.dtype == torch.float64 for tensor in tensors) else torch.float32


# Confidences are mean log-probs (<= 0, in practice > -100). Clamping keeps the z-score arithmetic
# finite for adversarial inputs without changing the order of any realistic pair.
_CONFIDENCE_CLAMP = 1e6


def _check_layout(group_size: int, *tensors: tuple[str, torch.Tensor]) -> int:
    """Validate the flat grouped layout and return the number of groups."""
    if not isinstance(group_size, Integral) or group_size < 2:
        raise ValueError(
            f"group_size must be an integer >= 2 (a group needs two responses to compare), got {group_size!r}."
        )
    first_name, first = tensors[0]
    for name, tensor in tensors:
        if tensor.dim() != 1:
            raise ValueError(
                f"{name} must be a 1-D tensor of shape [batch], got shape {tuple(tensor.shape)}."
            )
        if tensor.shape != first.shape:
            raise ValueError(
                f"{name} has {tensor.numel()} rows but {first_name} has {first.numel()}; "
                "pass one value per sampled response for both."
            )
    batch = first.numel()
    if batch % group_size != 0:
        raise ValueError(
            f"batch of {batch} rows is not divisible by group_size={group_size}; "
            f"the batch must hold whole groups ({batch // group_size} groups would leave {batch % group_size} rows)."
        )
    return batch // group_size


def nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Bessel-corrected standard deviation ignoring NaNs; NaN where fewer than two values remain.

    The same arithmetic as TRL's ``nanstd``, so GRPO advantages match TRL's to the bit.
    """
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    correction = torch.where(count > 1, count / (count - 1), torch.full_like(variance, float("nan")))
    std = torch.sqrt(variance * correction)
    if keepdim or dim is None:
        return std if keepdim else std.reshape(())
    return std.squeeze(dim)


def sequence_confidence(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised sequence log-probability, the paper's intrinsic confidence.

    c_i = (1 / L_i) * sum_t mask_it * logp_it,   L_i = sum_t mask_it

    Args:
        token_logps: [B, T] per-token log-probs of the sampled tokens (padding may hold anything).
        mask: [B, T] 1 for real completion tokens, 0 for padding.

    Returns:
        [B] float32. NaN marks "no confidence": a row with no completion tokens or a non-finite
        log-prob under its mask. Downstream functions treat NaN as "takes no part".
    """
    token_logps, mask = as_tensor("token_logps", token_logps), as_tensor("mask", mask)
    if token_logps.dim() != 2 or token_logps.shape != mask.shape:
        raise ValueError(
            f"token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} must both be [batch, tokens] "
            "with the same shape."
        )
    keep = mask.bool()
    logps = torch.where(
        keep, token_logps.float(), torch.zeros((), dtype=torch.float32, device=token_logps.device)
    )
    lengths = keep.sum(dim=1)
    confidence = logps.sum(dim=1) / lengths.clamp(min=1)
    defined = (lengths > 0) & torch.isfinite(logps).all(dim=1)
    return torch.where(defined, confidence, torch.full_like(confidence, float("nan")))


# Pairwise [groups, G, G] temporaries are built this many elements (512 KiB) at a time: blocks that stay in
# the CPU cache made preference_scores about 4x faster than whole-batch temporaries (docs/performance.md).
_PAIRWISE_BLOCK_ELEMENTS = 1 << 17


def _sum_over_peers(
    pairwise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], own: torch.Tensor, peer: torch.Tensor
) -> torch.Tensor:
    """S[n, i] = sum_j pairwise(own[n, i], peer[n, j]) for [groups, G] inputs, a block of groups at a time."""
    rows = max(1, _PAIRWISE_BLOCK_ELEMENTS // (own.shape[1] * own.shape[1]))
    blocks = [
        pairwise(own_block.unsqueeze(2), peer_block.unsqueeze(1)).sum(dim=2)
        for own_block, peer_block in zip(own.split(rows), peer.split(rows), strict=True)
    ]
    return torch.cat(blocks) if blocks else torch.zeros_like(own)


def preference_scores(
    confidence: torch.Tensor,
    group_size: int,
    method: Method = ICPOOptions.method,
    tau: float = ICPOOptions.tau,
    direction: Direction = ICPOOptions.direction,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Pairwise preference score of each response within its group, in [0, 1].

    With ``direction="low"`` (the paper) the less confident response wins each pairwise comparison:
      bt:   p_i = mean_{j != i} sigmoid((z_j - z_i) / tau),  z the group z-score of c
            (the Bradley-Terry probability that i is preferred over a random peer);
      rank: p_i = 1 - k_i / (G' - 1),  k_i the 0-based ascending rank of c_i among the G' rows with a
            finite confidence, ties sharing their mean rank.
    ``direction="high"`` reverses every comparison (an ablation control): p_high = 1 - p_low.

    Rows with a non-finite confidence, and every row of a group with fewer than two finite
    confidences, get the neutral 0.5. Both methods have group mean 0.5 over participating rows.
    """
    check_choice("method", method, METHODS)
    check_choice("direction", direction, DIRECTIONS)
    check_number("tau", tau, above=0.0)
    confidence = as_tensor("confidence", confidence)
    num_groups = _check_layout(group_size, ("confidence", confidence))

    c = confidence.to(_compute_dtype(confidence)).reshape(num_groups, group_size)
    valid = torch.isfinite(c)
    c = torch.where(valid, c.clamp(-_CONFIDENCE_CLAMP, _CONFIDENCE_CLAMP), torch.zeros_like(c))
    if direction == "high":
        c = -c
    num_valid = valid.sum(dim=1, keepdim=True)
    peers = (num_valid - 1).clamp(min=1)

    # Pairwise terms over [N, i, j], summed over j. A row without confidence is moved to where it never wins a
    # comparison and counts for nothing in its peers' scores: bt puts it at z_j = -inf, so its term
    # sigmoid(z_j - z_i) is 0; rank puts it at c_j = +inf, so its term sign(c_i - c_j) is -1, which the shift
    # (sign + 1) / 2 below turns into 0. Each row's comparison with itself counts exactly 0.5 and is
    # subtracted; the excluded row's own score is replaced by the neutral 0.5 at the end. This keeps the
    # [N, G, G] work to three elementwise passes.
    if method == "bt":
        mean = c.sum(dim=1, keepdim=True) / num_valid.clamp(min=1)
        centred = torch.where(valid, c - mean, torch.zeros_like(c))
        std = (centred.pow(2).sum(dim=1, keepdim=True) / peers).sqrt()
        z = centred / ((std + eps) * tau)
        z_peer = torch.where(valid, z, torch.full_like(z, float("-inf")))
        wins = _sum_over_peers(
            lambda own, peer: torch.sigmoid(peer - own), z, z_peer
        )  # sigmoid((z_j - z_i)/tau)
        scores = (wins - 0.5) / peers
    else:
        c_peer = torch.where(valid, c, torch.full_like(c, float("inf")))
        # [c_j < c_i] + 0.5 [c_j == c_i] = (sign(c_i - c_j) + 1) / 2, summed over j, less the self term
        order = _sum_over_peers(lambda own, peer: torch.sign(own - peer), c, c_peer)
        rank = 0.5 * (order + group_size) - 0.5
        scores = 1.0 - rank / peers

    takes_part = valid & (num_valid >= 2)
    scores = torch.where(takes_part, scores, torch.full_like(scores, NEUTRAL_PREFERENCE))
    return scores.reshape(-1).to(_output_dtype(confidence))


def _group_normalise(values: torch.Tensor, group_size: int, scale: Scale, eps: float) -> torch.Tensor:
    """GRPO's normalisation: (x - mean_g x) / (std + eps), NaN rows ignored; TRL's arithmetic."""
    grouped = values.reshape(-1, group_size)
    centred = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).reshape(-1)
    if scale == "none":
        return centred
    if scale == "group":
        std = nanstd(grouped, dim=1, keepdim=True).expand_as(grouped).reshape(-1)
    else:
        std = nanstd(values).expand_as(values)
    return centred / (std + eps)


def icpo_advantages(
    rewards: torch.Tensor,
    confidence: torch.Tensor,
    group_size: int,
    alpha: float,
    method: Method = ICPOOptions.method,
    tau: float = ICPOOptions.tau,
    direction: Direction = ICPOOptions.direction,
    combine: Combine = ICPOOptions.combine,
    scale: Scale = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """ICPO advantages for a flat grouped batch.

      reward:    A = GRPO(r + alpha * p)                    (the paper's "final reward" reading)
      advantage: A = GRPO(r) + alpha * (p - mean_g p)
      fallback:  A = GRPO(r) + alpha * (p - mean_g p) * flat_g,  flat_g = [max_g r == min_g r]
                 (ours: the preference only in groups where GRPO's signal is zero)
      unlikeliness: A = GRPO(r * (1 - alpha * k_i / G))   (He, Fried and Welleck 2025, arXiv 2506.02355)
                 k_i = ascending rank of c_i among the G' rows of the group with a finite confidence
                 (0 = the least likely; tied confidences share their mean rank; a row without one gets the
                 middle rank (G' - 1) / 2); the paper uses alpha = beta = 0.25. ``method`` and ``tau`` are
                 not used: the rank is the method.

    p = ``preference_scores(confidence, ...)``; GRPO as in ``grpo_advantages``. Unscorable rows
    (non-finite reward) get exactly 0 and are excluded from every group statistic. ``eps`` defaults
    to TRL's 1e-4 (verl uses 1e-6).
    """
    check_choice("combine", combine, COMBINES)
    check_choice("scale", scale, SCALES)
    rewards, confidence = as_tensor("rewards", rewards), as_tensor("confidence", confidence)
    num_groups = _check_layout(group_size, ("rewards", rewards), ("confidence", confidence))
    check_number("alpha", alpha, minimum=0.0)
    alpha = float(alpha)

    dtype, out_dtype = _compute_dtype(rewards, confidence), _output_dtype(rewards, confidence)
    r = rewards.to(dtype)
    scorable = torch.isfinite(r)
    r = torch.where(scorable, r, torch.full_like(r, float("nan")))
    # An unscorable row takes no part in the preference step either, so it cannot move its peers' p.
    confidence = torch.where(scorable, confidence.to(dtype), torch.full_like(r, float("nan")))
    if combine == "unlikeliness":  # rank p = 1 - k / (G' - 1), so k = (1 - p) (G' - 1)
        p = preference_scores(confidence, group_size, method="rank", direction=direction)
        finite = torch.isfinite(confidence).reshape(num_groups, group_size)
        peers = (finite.sum(dim=1, keepdim=True) - 1).clamp(min=0).expand(num_groups, group_size)
        rank = (1.0 - p) * peers.reshape(-1).to(p.dtype)
        shaped = r * (1.0 - alpha * rank / group_size)
        advantages = _group_normalise(shaped, group_size, scale, eps)
        return torch.nan_to_num(advantages.to(out_dtype), nan=0.0, posinf=0.0, neginf=0.0)
    p = preference_scores(confidence, group_size, method=method, tau=tau, direction=direction)

    if combine == "reward":
        advantages = _group_normalise(r + alpha * p, group_size, scale, eps)
    else:
        p_scorable = torch.where(scorable, p, torch.full_like(p, float("nan"))).reshape(
            num_groups, group_size
        )
        p_centred = p_scorable - torch.nanmean(p_scorable, dim=1, keepdim=True)
        if combine == "fallback":
            grouped = r.reshape(num_groups, group_size)
            highest = torch.where(scorable.reshape_as(grouped), grouped, -math.inf).amax(dim=1, keepdim=True)
            lowest = torch.where(scorable.reshape_as(grouped), grouped, math.inf).amin(dim=1, keepdim=True)
            p_centred = torch.where(highest <= lowest, p_centred, torch.zeros_like(p_centred))
        advantages = _group_normalise(r, group_size, scale, eps) + alpha * p_centred.reshape(-1)
    return torch.nan_to_num(advantages.to(out_dtype), nan=0.0, posinf=0.0, neginf=0.0)


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, scale: Scale = "group", eps: float = 1e-4
) -> torch.Tensor:
    """GRPO advantages A_i = (r_i - mean_g r) / (std r + eps): ICPO's alpha = 0 case, same code path."""
    rewards = as_tensor("rewards", rewards)
    no_confidence = torch.full_like(rewards, float("nan"), dtype=torch.float32)
    return icpo_advantages(rewards, no_confidence, group_size, alpha=0.0, scale=scale, eps=eps)


def scheduled_alpha(alpha: float, schedule: Schedule, step: int, total_steps: int) -> float:
    """alpha in force at ``step``: constant, or linear decay alpha * max(0, 1 - step / total_steps)."""
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "constant" or total_steps <= 0:
        return float(alpha)
    return float(alpha) * max(0.0, 1.0 - step / total_steps)


# --- diagnostics ------------------------------------------------------------------------------------


def rank_flip_rate(rewards: torch.Tensor, advantages: torch.Tensor, group_size: int) -> float:
    """Fraction of same-group pairs with different (finite) rewards whose advantage order disagrees
    with the reward order (reversed or tied). 0 when no such pair exists."""
    rewards, advantages = as_tensor("rewards", rewards), as_tensor("advantages", advantages)
    num_groups = _check_layout(group_size, ("rewards", rewards), ("advantages", advantages))
    r = rewards.to(_compute_dtype(rewards)).reshape(num_groups, group_size)
    a = advantages.to(_compute_dtype(advantages)).reshape(num_groups, group_size)
    finite = torch.isfinite(r)
    reward_order = torch.sign(r.unsqueeze(2) - r.unsqueeze(1))
    advantage_order = torch.sign(a.unsqueeze(2) - a.unsqueeze(1))
    ordered = (reward_order != 0) & finite.unsqueeze(2) & finite.unsqueeze(1)
    total = int(ordered.sum())
    if total == 0:
        return 0.0
    return float(((advantage_order != reward_order) & ordered).sum()) / total


def _mixed_groups(
    confidence: torch.Tensor, correct: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grids ``[groups, G]`` of confidence, right and wrong (rows with a finite confidence only), and the
    ``[groups]`` mask of mixed groups: those holding at least one right and one wrong answer."""
    confidence, correct = as_tensor("confidence", confidence), as_tensor("correct", correct)
    num_groups = _check_layout(group_size, ("confidence", confidence), ("correct", correct))
    c = confidence.to(_compute_dtype(confidence)).reshape(num_groups, group_size)
    scored = torch.isfinite(c)
    is_correct = correct.bool().reshape(num_groups, group_size)
    right, wrong = is_correct & scored, ~is_correct & scored
    return c, right, wrong, right.any(dim=1) & wrong.any(dim=1)


def group_auroc(confidence: torch.Tensor, correct: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per-group AUROC of confidence for correctness, ``[groups]``: the share of (right, wrong) pairs of
    the same prompt in which the right answer is the more confident (ties count 1/2).

        AUROC_g = (1 / (n_right n_wrong)) * sum_{i right, j wrong} ([c_i > c_j] + [c_i = c_j] / 2)

    NaN for a group that is not mixed (all right, all wrong, or fewer than two scored rows): such a
    group says nothing about whether confidence separates right from wrong."""
    c, right, wrong, mixed = _mixed_groups(confidence, correct, group_size)
    difference = c.unsqueeze(2) - c.unsqueeze(1)  # [g, i, j] = c_i - c_j
    wins = (difference > 0).float() + 0.5 * (difference == 0).float()
    pairs = right.unsqueeze(2) & wrong.unsqueeze(1)
    won = torch.where(pairs, wins, torch.zeros_like(wins)).sum(dim=(1, 2))
    counted = pairs.sum(dim=(1, 2))
    return torch.where(mixed, won / counted.clamp(min=1), torch.full_like(won, float("nan")))


def within_group_auroc(confidence: torch.Tensor, correct: torch.Tensor, group_size: int) -> float:
    """Mean of :func:`group_auroc` over mixed groups (each prompt weighs the same): the probability that
    a correct response is more confident than a wrong one to the same prompt. 0.5 = confidence carries
    no signal, 1 = it ranks every right answer first. NaN when no group is mixed."""
    per_group = group_auroc(confidence, correct, group_size)
    return float(torch.nanmean(per_group)) if per_group.numel() else math.nan


def overconfident_error_rate(confidence: torch.Tensor, correct: torch.Tensor, group_size: int) -> float:
    """Among wrong answers in mixed groups (at least one right and one wrong answer with a confidence),
    the share that is strictly more confident than every correct answer of its group:

        rate = #{wrong j in mixed g : c_j > max_{i right in g} c_i} / #{wrong j in mixed g}

    NaN when no group is mixed (an all-wrong group has no correct answer to be overconfident against)."""
    c, right, wrong, mixed = _mixed_groups(confidence, correct, group_size)
    best_right = torch.where(right, c, torch.full_like(c, -math.inf)).amax(dim=1, keepdim=True)
    counted = wrong & mixed.unsqueeze(1)
    total = int(counted.sum())
    if total == 0:
        return math.nan
    return float((counted & (c > best_right)).sum()) / total


def group_outcome_shares(
    correct: torch.Tensor, group_size: int, scored: torch.Tensor | None = None
) -> dict[str, float]:
    """Shares of groups whose scored rows are all wrong, mixed, or all right (NaN each when no group has a
    scored row). ``scored`` marks the rows that count (default: all); GRPO has no signal in the first
    and the last kind."""
    correct = as_tensor("correct", correct)
    scored = (
        torch.ones_like(correct, dtype=torch.bool) if scored is None else as_tensor("scored", scored).bool()
    )
    num_groups = _check_layout(group_size, ("correct", correct), ("scored", scored))
    ok = correct.bool().reshape(num_groups, group_size)
    counted = scored.reshape(num_groups, group_size)
    any_right, any_wrong = (ok & counted).any(dim=1), (~ok & counted).any(dim=1)
    present = counted.any(dim=1)
    groups = int(present.sum())
    if groups == 0:
        return {"all_wrong": math.nan, "mixed": math.nan, "all_correct": math.nan}
    return {
        "all_wrong": float((present & ~any_right).sum()) / groups,
        "mixed": float((any_right & any_wrong).sum()) / groups,
        "all_correct": float((present & ~any_wrong).sum()) / groups,
    }


def step_metrics(
    rewards: torch.Tensor,
    confidence: torch.Tensor,
    advantages: torch.Tensor,
    group_size: int,
    alpha: float,
    correct_threshold: float,
) -> dict[str, float]:
    """The per-step ``icpo/*`` metrics every engine logs, from one batch in the flat grouped layout.

    Unscorable rows (NaN reward) are left out of every statistic. A reward >= ``correct_threshold``
    counts as correct. Keys: alpha, confidence_mean, confidence_std, rank_flip_rate,
    overconfident_error_rate, within_group_auroc, mixed_group_share (NaN where undefined)."""
    rewards, confidence = as_tensor("rewards", rewards), as_tensor("confidence", confidence)
    advantages = as_tensor("advantages", advantages)
    scored = torch.isfinite(rewards)
    scored_confidence = torch.where(
        scored, confidence.float(), torch.full_like(confidence, math.nan, dtype=torch.float32)
    )
    finite = scored_confidence[torch.isfinite(scored_confidence)]
    correct = rewards >= correct_threshold
    return {
        "icpo/alpha": float(alpha),
        "icpo/confidence_mean": finite.mean().item() if finite.numel() else math.nan,
        "icpo/confidence_std": nanstd(finite).item() if finite.numel() > 1 else math.nan,
        "icpo/rank_flip_rate": rank_flip_rate(rewards, advantages, group_size),
        "icpo/overconfident_error_rate": overconfident_error_rate(scored_confidence, correct, group_size),
        "icpo/within_group_auroc": within_group_auroc(scored_confidence, correct, group_size),
        "icpo/mixed_group_share": group_outcome_shares(correct, group_size, scored)["mixed"],
    }
