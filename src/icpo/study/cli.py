"""``icpo demo`` and ``icpo compare``: GRPO against ICPO or its peers, paired by seed, on the tiny policy
(``icpo.study.engine``) or a real LM (``icpo.study.real_lm``).

Every argument, and the --out folder's finished runs and warm-ups, are checked before any work or write;
the folder is then locked for as long as the command writes there.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from pathlib import Path

from icpo.command import HelpFormatter, check_output_folder, checked_command
from icpo.core import OPTION_CHOICES, OPTION_NAMES, ICPOOptions
from icpo.study.methods import METHODS, Method, get_method, needs_off_policy_updates, options_method
from icpo.study.real_lm import RealLMSettings
from icpo.study.rl_run import StudySettings


def _add_study_arguments(parser: argparse.ArgumentParser, defaults: StudySettings) -> None:
    parser.add_argument("--task", default=defaults.task, help="task family (addition, countdown)")
    parser.add_argument(
        "--difficulty",
        type=int,
        default=defaults.difficulty,
        help="addition: digits; countdown: numbers given",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"RL steps per run (default: {defaults.steps}; real LM: 100)"
    )
    parser.add_argument(
        "--num-train", type=int, default=defaults.num_train, help="train prompts (and SFT rows)"
    )
    parser.add_argument(
        "--num-test",
        type=int,
        default=None,
        help=f"held-out prompts (default: {defaults.num_test}; real LM: 64)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=f"held-out eval interval in steps (default: {defaults.eval_every}; real LM: 25)",
    )
    parser.add_argument("--reward-noise", type=float, default=defaults.reward_noise, help="reward flip prob.")
    parser.add_argument(
        "--start-accuracy",
        type=float,
        default=defaults.start_accuracy,
        help="warm up to this greedy accuracy on a dev set; a seed that cannot reach it is left out and "
        "named in the report (default: a fixed 40-epoch warm-up)",
    )
    options = parser.add_argument_group("ICPO options of the compared variant (icpo.core.ICPOOptions)")
    for option in fields(ICPOOptions):
        choices = OPTION_CHOICES.get(option.name)
        options.add_argument(
            _flag(option.name),
            dest=option.name,
            type=str if choices else float,
            choices=choices,
            default=option.default,
            help=option.metadata["help"],
        )


def _flag(option_name: str) -> str:
    return "--" + option_name.replace("_", "-")


@dataclass(frozen=True)
class StudyPlan:
    """What ``icpo demo``/``icpo compare`` will run: checked, nothing done yet."""

    out: Path
    settings: StudySettings
    methods: list[Method]  # the baseline (grpo) first
    seeds: list[int]
    report_name: str


def _plan(args) -> StudyPlan:
    """Check the arguments and the --out folder before any work or write; ValueError names what is wrong.
    Finished runs already in --out are read, so a truncated result.json or a run made with other settings
    is reported here, not after hours of training."""
    from icpo.study.engine import check_study_folder

    if getattr(args, "model", "tiny") != "tiny":
        return _real_lm_plan(args)
    tiny = StudySettings()
    for key in ("steps", "eval_every", "num_test"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(tiny, key))
    settings, methods = _settings_and_methods(args)
    if getattr(args, "seed", 0) < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    seeds = [args.seed] if args.command == "demo" else _seeds(args)
    report_name = (
        "report"
        if args.command == "demo"
        else args.report or f"report-{'-'.join(m.name for m in methods[1:])}-noise{settings.reward_noise:g}"
    )
    if Path(report_name).name != report_name or report_name in (".", ".."):
        raise ValueError(
            f"--report {report_name!r} is not a file name; give a name without '/' (the report is written "
            "into --out as NAME.md, NAME.csv, NAME.json and NAME-*.png)."
        )
    out = check_output_folder(args.out)
    check_study_folder(out, settings, methods, seeds)
    return StudyPlan(out, settings, methods, seeds, report_name)


def _compared_methods(args) -> list[Method]:
    """GRPO, then each ``--methods`` entry (without one: the method of the ICPO flags); a clip-only method
    needs ``--num-iterations`` 2 or more, else it would be GRPO bit for bit."""
    names = getattr(args, "methods", None)
    if names:
        compared = [get_method(name) for name in dict.fromkeys(names) if name != "grpo"]
    else:
        options = ICPOOptions(**{name: getattr(args, name) for name in OPTION_NAMES})
        options.validate(_flag)
        if options.alpha <= 0:
            raise ValueError(
                f"--alpha must be > 0 for the ICPO variant (the GRPO baseline is alpha 0), got {options.alpha}."
            )
        compared = [options_method(options)]
    if not compared:
        raise ValueError("--methods names only grpo, the baseline every study runs: add a method to compare.")
    iterations = getattr(args, "num_iterations", 1)
    if iterations < 1:
        raise ValueError(f"--num-iterations must be at least 1, got {iterations}.")
    clipped = [m.name for m in compared if needs_off_policy_updates(m)]
    if clipped and iterations == 1:
        raise ValueError(
            f"{', '.join(clipped)} changes only the PPO clip, and with --num-iterations 1 every update is on-policy "
            "(the ratio is exactly 1, no clip acts): it would be GRPO bit for bit. Give --num-iterations 2 or more."
        )
    return [METHODS["grpo"], *compared]


def _settings_and_methods(args) -> tuple[StudySettings, list[Method]]:
    from icpo.tasks import check_difficulty, get_task

    check_difficulty(get_task(args.task), args.difficulty)
    methods = _compared_methods(args)
    if not 0 <= args.reward_noise <= 1:
        raise ValueError(f"--reward-noise must be a probability in [0, 1], got {args.reward_noise}.")
    if args.start_accuracy is not None and not 0 < args.start_accuracy <= 1:
        raise ValueError(f"--start-accuracy must be in (0, 1], got {args.start_accuracy}.")
    for name in ("steps", "num_train", "num_test", "eval_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    settings = replace(
        StudySettings(),
        task=args.task,
        difficulty=args.difficulty,
        steps=args.steps,
        num_train=args.num_train,
        num_test=args.num_test,
        eval_every=args.eval_every,
        reward_noise=args.reward_noise,
        start_accuracy=args.start_accuracy,
        num_iterations=getattr(args, "num_iterations", 1),
    )
    return settings, methods


REAL_LM_METHODS = ("grpo", "icpo", "unlikeliness")


@dataclass(frozen=True)
class RealLMPlan:
    """What ``icpo compare --model X`` will run: checked, nothing done yet."""

    out: Path
    settings: RealLMSettings
    methods: list[Method]
    seeds: list[int]


def _real_lm_plan(args) -> RealLMPlan:
    from icpo.models import PRESETS, check_preset_available, preset_folder
    from icpo.recipe import _layer_count, check_model
    from icpo.study.chat_tasks import REGIMES

    if args.task not in REGIMES:
        raise ValueError(f"--model {args.model} trains on a chat task: give --task {', '.join(REGIMES)}.")
    if args.model in PRESETS:
        check_preset_available(args.model)
    else:
        check_model(args.model)
    seeds = _seeds(args)
    defaults = RealLMSettings()
    overrides = {
        key: value
        for key, value in (
            ("steps", args.steps),
            ("eval_every", args.eval_every),
            ("num_test", args.num_test),
        )
        if value is not None
    }
    for key, value in overrides.items():
        if value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {value}.")
    folder = preset_folder(args.model) if args.model in PRESETS else Path(args.model)
    layers = _layer_count(str(folder))  # None until a preset is converted: checked when it loads
    if not 1 <= args.trainable_layers <= (layers or args.trainable_layers):
        raise ValueError(
            f"--trainable-layers {args.trainable_layers}: the model has {layers} decoder layers; give 1 to {layers}."
        )
    settings = replace(
        defaults, model=args.model, regime=args.task, trainable_layers=args.trainable_layers, **overrides
    )
    if not args.methods:
        args.methods = list(REAL_LM_METHODS)
    methods = _compared_methods(args)
    settings = replace(settings, num_iterations=args.num_iterations)
    return RealLMPlan(check_output_folder(args.out), settings, methods, seeds)


def _seeds(args) -> list[int]:
    """``icpo compare``'s seeds: S..S+N-1 for ``--first-seed S --seeds N``."""
    if args.seeds < 1 or args.first_seed < 0:
        raise ValueError(
            f"--seeds must be at least 1 and --first-seed at least 0 (the study runs seeds S..S+N-1), got "
            f"--seeds {args.seeds} --first-seed {args.first_seed}."
        )
    return list(range(args.first_seed, args.first_seed + args.seeds))


def _run_plan(args, plan: StudyPlan | RealLMPlan) -> int:
    from icpo.study.engine import run_study

    if isinstance(plan, RealLMPlan):
        from icpo.study.claims import write_real_lm_report
        from icpo.study.real_lm import run_real_lm_study

        results = run_real_lm_study(plan.out, plan.settings, plan.methods, plan.seeds)
        print(f"report: {write_real_lm_report(plan.out, results)}")
        return 0

    report = run_study(plan.out, plan.settings, plan.methods, plan.seeds, plan.report_name)
    print(f"report: {report}")
    return 0


def _out(args) -> Path:
    return Path(args.out)


OUT_HELP = "study folder: warm-ups, runs, report; locked while the command runs"


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        formatter_class=HelpFormatter,
        help="warm-up, GRPO vs ICPO from the same start, held-out evaluation, report (CPU, offline)",
        description="The offline demo on the tiny policy (icpo.tiny, 130k parameters, built and warmed up "
        "locally): GRPO and ICPO from the same warm start, 300 steps of 32 prompts x 8 samples each (where GRPO "
        "gains about 0.2 held-out accuracy), held-out evaluation and a report with plots. About two minutes on "
        "a 2-core CPU; a second run reuses every cached piece.",
    )
    _add_study_arguments(demo, StudySettings())
    demo.add_argument("--seed", type=int, default=0, help="seed of the warm-up, the RL runs and the data")
    demo.add_argument("--out", default="runs/demo", help=OUT_HELP)
    demo.set_defaults(run=checked_command(_plan, _run_plan, folder=_out))

    compare = subparsers.add_parser(
        "compare",
        formatter_class=HelpFormatter,
        help="GRPO vs ICPO and its peers over several seeds, paired by seed, on the tiny policy or a real LM",
        description="On the tiny policy (default): GRPO against the ICPO variant of the flags, or against "
        "each --methods entry, over seeds S..S+N-1, about 40 s per run on a 2-core CPU. With --model (a chat "
        "model preset such as smollm2-135m-instruct, or a folder) and --task single-digit|two-digit-add|word-problems: "
        "every --methods entry against GRPO on a chat task, held-out problems in the training prompt, the "
        "claim table in report.md and claims.json (SmolLM2: 7-14 s per step and minutes per evaluation on a "
        "2-core CPU, docs/performance.md). Finished runs are never redone.",
    )
    _add_study_arguments(compare, StudySettings())
    compare.add_argument("--seeds", type=int, default=5, help="how many seeds: S..S+N-1 (S: --first-seed)")
    compare.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="first seed: to split one study's seeds over processes or machines, run each share into its own "
        "--out (with a real LM, a copy of the main folder's start.json there saves evaluating the start "
        "again), copy the run folders (runs/*) into one, and rerun there over all seeds: only the report is "
        "left to make",
    )
    real = compare.add_argument_group(
        "a real LM (icpo.study.real_lm): --model PRESET_OR_FOLDER --task single-digit|two-digit-add|word-problems; "
        "--steps, --eval-every, --num-test, --seeds, --methods and --num-iterations apply, the other study "
        "flags are the tiny policy's"
    )
    real.add_argument(
        "--model", default="tiny", help="tiny (the warm-up study) or a chat model preset or folder"
    )
    real.add_argument(
        "--trainable-layers", type=int, default=4, help="train only the top N decoder layers (the recipes' 4)"
    )
    compare.add_argument(
        "--num-iterations",
        type=int,
        default=1,
        help="optimiser passes per generated batch (TRL's num_iterations); clip-higher needs 2 or more",
    )
    compare.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help=f"methods compared with grpo (icpo.study.methods: {', '.join(METHODS)}); default: the ICPO "
        f"flags' variant on the tiny policy, {' '.join(REAL_LM_METHODS)} on a real LM",
    )
    compare.add_argument("--out", default="runs/compare", help=OUT_HELP)
    compare.add_argument("--report", default=None, help="report file stem (default: from the variant)")
    compare.set_defaults(run=checked_command(_plan, _run_plan, folder=_out))
