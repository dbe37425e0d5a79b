"""The methods a study compares: a name, ICPO options and trainer (``GRPOConfig``) options.

| name          | what                                                               | whose           |
|---------------|--------------------------------------------------------------------|-----------------|
| grpo          | GRPO (``icpo_alpha=0``)                                            | the baseline    |
| icpo          | ICPO with this library's defaults (``combine="advantage"``)        | ICPO            |
| icpo-reward   | ICPO as the paper reads it: the preference added to the reward     | ICPO (paper)    |
| unlikeliness  | GRPO(r (1 - 0.25 k / G)), k the ascending confidence rank          | He et al. 2025  |
| clip-higher   | GRPO with ``epsilon_high=0.28`` (DAPO's answer to entropy collapse) | Yu et al. 2025  |

``unlikeliness`` is He, Fried and Welleck, "Rewarding the Unlikely" (arXiv 2506.02355), beta = 0.25 as in
their code; ``clip-higher`` is DAPO's decoupled upper clip (arXiv 2503.14476). Both are what a user would
try instead of ICPO. ``clip-higher`` changes only the PPO clip, so it acts only when a batch is used for
more than one update (``num_iterations`` or ``steps_per_generation`` above 1): fully on-policy, the ratio
is exactly 1 and it is GRPO bit for bit (measured: identical losses at every step of a 60-step SmolLM2 run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from icpo.core import ICPOOptions


@dataclass(frozen=True)
class Method:
    name: str
    options: ICPOOptions
    trainer: dict[str, Any] = field(default_factory=dict)  # GRPOConfig options beyond the ICPO ones
    source: str = ""
    label: str = ""  # how plots name it

    def config_kwargs(self) -> dict[str, Any]:
        """``ICPOConfig`` keyword arguments of this method (the ICPO options as ``icpo_*``, then the rest)."""
        from icpo.trl import CONFIG_FIELDS

        return {CONFIG_FIELDS[name]: getattr(self.options, name) for name in CONFIG_FIELDS} | self.trainer


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("grpo", ICPOOptions(alpha=0.0), source="GRPO (Shao et al. 2024)", label="GRPO"),
        Method("icpo", ICPOOptions(), source="ICPO, this library's defaults", label="ICPO"),
        Method(
            "icpo-reward",
            ICPOOptions(combine="reward"),
            source="ICPO, the paper's reading",
            label="ICPO, reward",
        ),
        Method(
            "unlikeliness",
            ICPOOptions(alpha=0.25, combine="unlikeliness"),
            source="He, Fried and Welleck 2025 (arXiv 2506.02355)",
            label="unlikeliness (He et al.)",
        ),
        Method(
            "clip-higher",
            ICPOOptions(alpha=0.0),
            {"epsilon_high": 0.28},
            source="DAPO's clip-higher (arXiv 2503.14476)",
            label="clip-higher (DAPO)",
        ),
    )
}


def options_method(options: ICPOOptions) -> Method:
    """The method that trains with ``options`` and GRPO's trainer options: ``grpo`` at alpha 0, else named
    by its options (``icpo-a0.5-bt-t1-advantage-low``, ``-linear`` appended for a decaying alpha)."""
    if options.alpha == 0:
        return METHODS["grpo"]
    name = f"icpo-a{options.alpha:g}-{options.method}-t{options.tau:g}-{options.combine}-{options.direction}"
    return Method(name if options.schedule == "constant" else f"{name}-{options.schedule}", options)


def needs_off_policy_updates(method: Method) -> bool:
    """True for a method that changes only the PPO clip (``epsilon_high``): with one optimiser pass per
    generated batch the ratio is exactly 1 and it is GRPO bit for bit."""
    return "epsilon_high" in method.trainer


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}.")
    return METHODS[name]
