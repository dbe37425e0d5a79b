"""A study: one RL run (``icpo.study.rl_run``) for every (method, seed), all methods of one seed starting from
the same cached warm-up (``icpo.warmup``), then the report (``icpo.study.report``).

Layout of a study folder (``--out`` of ``icpo demo``/``icpo compare``)::

    warmup-seed{S}[-start{a}]/               the SFT warm start of seed S (a Hugging Face folder), reused
    runs/{method}-noise{p}[-start{a}]-seed{S}/   result.json (written atomically, last), metrics.jsonl,
                                             TensorBoard events
    {report}.md, {report}.csv, {report}.json, {report}-*.png
    icpo.log                                 what transformers, TRL and datasets printed
    .lock                                    held by the command writing here (``icpo.runfolder``)

A run whose result.json exists is never redone, so a killed study resumes where it stopped; a run folder
without it is cleared and run again. Several ``compare`` calls may share one folder, one at a time:
warm-ups and runs with the same settings (e.g. the GRPO baseline) are reused, and a run or warm-up made
with other settings is an error (``check_study_folder``, before any work) rather than a silent mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icpo.runfolder import read_json
from icpo.study.heldout import evaluate, max_completion_chars
from icpo.study.methods import Method
from icpo.study.rl_run import RESULT, StudySettings, run_rl

LOG_FILE = "icpo.log"  # what transformers, TRL and datasets print during a study
# The longest a warm-up to a target accuracy may train (it stops at the target): on the shared machine
# seed 1 needed about 1500 SFT steps (77 epochs of 2000 prompts) to reach 0.4 (docs/results.md).
TARGETED_WARMUP_EPOCHS = 100.0


def _start_suffix(settings: StudySettings) -> str:
    """``-start{a}`` in folder names of a study with a set warm-start accuracy, else nothing."""
    return "" if settings.start_accuracy is None else f"-start{settings.start_accuracy:g}"


def run_folder_name(method: Method, settings: StudySettings, seed: int) -> str:
    return f"{method.name}-noise{settings.reward_noise:g}{_start_suffix(settings)}-seed{seed}"


def warm_up_plan(out: Path, settings: StudySettings, seed: int):
    """The seed's warm-up folder in ``out`` and the ``WarmupSettings`` it is (or will be) made with."""
    from icpo.warmup import WarmupSettings

    warm_settings = WarmupSettings(
        task=settings.task,
        difficulty=settings.difficulty,
        num_examples=settings.num_train,
        mistake_rate=settings.mistake_rate,
        seed=seed,
        target_accuracy=settings.start_accuracy,
        epochs=WarmupSettings.epochs if settings.start_accuracy is None else TARGETED_WARMUP_EPOCHS,
    )
    return out / f"warmup-seed{seed}{_start_suffix(settings)}", warm_settings


def warm_start_for(out: Path, settings: StudySettings, seed: int):
    """The seed's train/test problems and its cached warm-up folder (built on first use).

    With ``settings.start_accuracy`` the warm-up stops at that greedy accuracy measured on a dev set of
    ``num_test`` prompts from another seed, disjoint from train and test (the test set is not used to
    choose the start); the folder is then ``warmup-seed{S}-start{target}``."""
    from icpo.tasks import generate_problems, train_test_problems
    from icpo.tiny import build_char_tokenizer
    from icpo.warmup import warm_up

    train, test = train_test_problems(
        settings.task, settings.num_train, settings.num_test, seed, settings.difficulty
    )
    folder, warm_settings = warm_up_plan(out, settings, seed)
    if settings.start_accuracy is None:
        return warm_up(folder, warm_settings, train), train, test
    seen = {p.prompt for p in train + test}
    dev = generate_problems(settings.task, settings.num_test, seed + 2_000_003, settings.difficulty, seen)
    tokenizer, max_new_tokens = build_char_tokenizer(), max_completion_chars(train)

    def dev_accuracy(model) -> float:
        return evaluate(model, tokenizer, settings.task, dev, max_new_tokens).greedy_accuracy

    return warm_up(folder, warm_settings, train, dev_accuracy), train, test


def start_missed(out: Path, settings: StudySettings, seed: int) -> str | None:
    """Why the seed is left out of a study with a set start (its warm-up never reached the target), or
    None when it is not (no target, the target reached, or no warm-up yet)."""
    from icpo.warmup import read_start

    start = read_start(warm_up_plan(out, settings, seed)[0])
    if start is None or start["reached"]:
        return None
    return (
        f"seed {seed} left out: its warm-up never reached start accuracy {start['target']:g} (closest dev "
        f"accuracy {start['dev_accuracy']:g}, at SFT step {start['sft_step']}); this initialisation starts "
        "in another regime"
    )


# What the report reads from each result.json (icpo.study.rl_run.run_rl writes them all).
RESULT_KEYS = (
    "variant",
    "variant_options",
    "seed",
    "settings",
    "eval_curve",
    "final",
    "warm_start",
    "wall_seconds",
)


def load_finished(run_dir: Path, settings: StudySettings, method: Method) -> dict[str, Any] | None:
    """The run's result if it finished with these settings; raises if it finished with others."""
    path = run_dir / RESULT
    if not path.exists():
        return None
    fix = "delete it and that run is redone."
    result = read_json(path, fix)
    missing = (
        [key for key in RESULT_KEYS if key not in result] if isinstance(result, dict) else list(RESULT_KEYS)
    )
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)} (not a result a run wrote); {fix}")
    if not (recorded_as(settings, result["settings"]) and trained_as(method, result)):
        raise ValueError(
            f"{run_dir} holds a finished run made with other settings; use another --out folder or delete it."
        )
    return result


def trained_as(method: Method, result: dict[str, Any]) -> bool:
    """Whether a finished run's result was trained with ``method``'s ICPO and trainer options (a result
    written before trainer options were recorded had none)."""
    return (
        recorded_as(method.options, result["variant_options"]) and result.get("trainer", {}) == method.trainer
    )


def recorded_as(expected: Any, recorded: dict[str, Any]) -> bool:
    """Whether settings or options recorded by a finished run equal ``expected`` (a field added since then
    takes its default)."""
    try:
        return type(expected)(**recorded) == expected
    except TypeError:  # a field that no longer exists
        return False


def check_study_folder(
    out: Path, settings: StudySettings, methods: list[Method], seeds: list[int]
) -> dict[Path, dict[str, Any] | None]:
    """Read what ``out`` already holds for this study, writing nothing: each planned run's result (None if
    not finished). A ValueError names a result.json that is damaged or incomplete, or a finished run or
    warm-up made with other settings."""
    from icpo.warmup import check_reusable

    for seed in seeds:
        check_reusable(*warm_up_plan(out, settings, seed))
    return {
        run_dir: load_finished(run_dir, settings, method)
        for seed in seeds
        for method in methods
        for run_dir in [out / "runs" / run_folder_name(method, settings, seed)]
    }


def run_study(
    out: Path, settings: StudySettings, methods: list[Method], seeds: list[int], report_name: str
) -> Path:
    """Every (seed, method) run, skipping finished ones, then the report; returns the report path."""
    import torch
    from tqdm.auto import tqdm

    from icpo.console import library_output_to
    from icpo.study.report import write_report

    # The policy is tiny: one intra-op thread is faster than two fighting over a busy CPU.
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    plan = [
        (seed, method, out / "runs" / run_folder_name(method, settings, seed))
        for seed in seeds
        for method in methods
    ]
    # Every finished run and warm-up is read (and its settings checked) before any training starts.
    finished = check_study_folder(out, settings, methods, seeds)
    results, left_out = [], {}
    with library_output_to(out / LOG_FILE), tqdm(plan, desc="runs", unit="run", position=0) as progress:
        for seed, method, run_dir in progress:
            progress.set_postfix_str(run_dir.name)
            result = finished[run_dir]
            if result is None:
                warm_start, train, test = warm_start_for(out, settings, seed)
            if (why := start_missed(out, settings, seed)) is not None:
                if seed not in left_out:
                    progress.write(why)
                    left_out[seed] = why
                continue
            if result is None:
                result = run_rl(warm_start, settings, method, seed, run_dir, train, test)
            results.append(result)
    if not results:
        raise ValueError(
            "; ".join(left_out.values()) + ". No seed reached the start: choose a lower --start-accuracy."
        )
    return write_report(out, report_name, results, baseline=methods[0].name, notes=list(left_out.values()))
