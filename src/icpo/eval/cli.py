"""``icpo eval``: evaluate a checkpoint on benchmark presets, or on a recipe's held-out split (also
``python -m icpo.eval.cli``).

Every argument is checked before anything is written or loaded (one ``icpo eval: error:`` line, exit
2); the ``--out`` folder is then locked for the whole run (a second eval on it exits 2 naming the
holder's PID).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from icpo.command import HelpFormatter, checked_command

DEFAULT_BENCHMARKS = "math500"
# 512 new tokens hold a step-by-step solution of a GSM8K/MATH-500 level problem from an instruct model
# (most end well under 400) at half the cost of 1024; the summary's `truncated` share says when a
# benchmark needs more.
DEFAULT_MAX_NEW_TOKENS = 512
DESCRIPTION = (
    "Evaluate a model on benchmark presets and/or a training recipe's held-out split: k samples per problem, "
    "graded by the rewards' graders, summarised as avg@k, pass@k and confidence metrics in --out."
)


SPLITS = ("held-out", "train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from icpo.eval.benchmarks import DATA_DIR_ENV, DEFAULT_TEMPLATE, PRESETS, PROMPT_TEMPLATES

    parser.add_argument(
        "--model", required=True, help="a Hugging Face model folder, a model preset, or a hub id when online"
    )
    parser.add_argument(
        "--benchmarks",
        default=None,
        help=f"comma-separated presets, any of: {', '.join(PRESETS)} (default: {DEFAULT_BENCHMARKS}, or "
        "none with --recipe). mawps, svamp and asdiv are also the word-problem recipes' training data",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="a word-problem training recipe (YAML): also evaluate its --split, made by the very code "
        "`icpo train` splits with, as benchmark DATASET-SPLIT (e.g. wordproblems-held-out)",
    )
    parser.add_argument(
        "--split", choices=SPLITS, default="held-out", help="which split of --recipe's dataset to evaluate"
    )
    parser.add_argument(
        "--prompt-template",
        default=None,
        help=f"the user message: one of {', '.join(PROMPT_TEMPLATES)}, or a text containing {{question}} "
        f"(and optionally {{instruction}}). Default: {DEFAULT_TEMPLATE} (the question, then 'reason step "
        "by step ... \\boxed{}', or the letter/True-False instruction) for presets; brief (the recipes' "
        "training prompt: 'Answer briefly and end with the final number.') for --recipe's split",
    )
    parser.add_argument(
        "--system-prompt",
        default=None,
        help="a system message before the user message (default: none, as the recipes train; the chat "
        "template may add its own default)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder holding the benchmark files (default: ${DATA_DIR_ENV} when set, else "
        "../shared/benchmarks beside the repository checkout when it holds the file, else each preset's "
        "Hugging Face Hub dataset; see docs/evaluation.md)",
    )
    parser.add_argument("--samples", type=int, default=1, help="k: samples per problem (avg@k, pass@k)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    parser.add_argument(
        "--out", required=True, help="run folder: samples.jsonl, summary.json, reliability.png"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="sequences generated together")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help="completion limit; a completion cut there counts as wrong (see `truncated`)",
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy; more than 1 sample needs > 0"
    )
    parser.add_argument(
        "--top-p", type=float, default=1.0, help="nucleus sampling mass (with temperature > 0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument(
        "--backend",
        choices=("auto", "transformers", "vllm"),
        default="auto",
        help="what generates: transformers (model.generate, CPU or GPU), vllm (needs vLLM and a CUDA GPU); "
        "auto picks vllm when both are present, else transformers",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _settings(args: argparse.Namespace):
    from icpo.eval.generation import SamplingSettings

    return SamplingSettings(args.max_new_tokens, args.temperature, args.top_p)


def _run_config(args: argparse.Namespace) -> dict:
    """The model and problem settings config.json records: the model by content (a folder's
    ``model_fingerprint``; a preset or hub id by name), so retrained weights in the same folder are a
    new run, and its path for the reader (not compared)."""
    from icpo.models import PRESETS as MODEL_PRESETS
    from icpo.models import model_fingerprint

    folder = Path(args.model).expanduser()
    is_folder = args.model not in MODEL_PRESETS and folder.is_dir()
    identity = model_fingerprint(folder) if is_folder else str(args.model)
    prompts = {"prompt_template": args.prompt_template, "system_prompt": args.system_prompt}
    recipe = {"recipe": str(Path(args.recipe).resolve()), "split": args.split} if args.recipe else {}
    given = {key: value for key, value in {**prompts, **recipe}.items() if value is not None}
    return {"model": identity, "model_path": str(args.model), "limit": args.limit, **given}


def _benchmarks(args: argparse.Namespace) -> dict:
    """The problems of every named preset and of the recipe's split, in their prompt templates; a note on
    stderr for each preset the word-problem recipes also train on."""
    from icpo.eval.benchmarks import (
        DEFAULT_TEMPLATE,
        WORD_PROBLEM_PRESETS,
        load_benchmark,
        word_problem_benchmark,
    )
    from icpo.recipe import recipe_word_problems

    default = DEFAULT_BENCHMARKS if args.recipe is None else ""
    names = [name.strip() for name in (args.benchmarks or default).split(",") if name.strip()]
    if not names and args.recipe is None:
        raise ValueError("--benchmarks is empty; name at least one preset (or a --recipe).")
    template = args.prompt_template or DEFAULT_TEMPLATE
    benchmarks = {
        name: load_benchmark(
            name, args.data_dir, limit=args.limit, template=template, system_prompt=args.system_prompt
        )
        for name in names
    }
    for name in sorted(set(names) & set(WORD_PROBLEM_PRESETS)):
        print(
            f"icpo eval: note: {name} includes the problems the word-problem recipes train on (80% of it); "
            "evaluate only what a recipe held out with --recipe RECIPE.yaml",
            file=sys.stderr,
        )
    if args.recipe is not None:
        dataset, train, held_out = recipe_word_problems(Path(args.recipe), args.data_dir)
        problems = held_out if args.split == "held-out" else train
        benchmarks[f"{dataset}-{args.split}"] = word_problem_benchmark(
            problems[: args.limit], args.prompt_template or "brief", args.system_prompt
        )
    return benchmarks


def _load_inputs(args: argparse.Namespace) -> tuple[dict, dict]:
    """Check every argument, the model, the --out folder (its config.json and samples.jsonl) and every
    benchmark before any work; return the benchmarks and the run's model settings."""
    from icpo.command import check_output_folder
    from icpo.eval.harness import (
        SAMPLES_FILE,
        check_arguments,
        check_config,
        check_problem_ids,
        config_of,
        stored_samples,
    )
    from icpo.models import PRESETS as MODEL_PRESETS
    from icpo.models import check_preset_available
    from icpo.recipe import check_model

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1 (or left out for every problem), got {args.limit}.")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2**32 - 1], got {args.seed}.")
    check_arguments(args.samples, args.batch_size, _settings(args))
    if args.model in MODEL_PRESETS:  # built into its cache folder when the run starts
        check_preset_available(args.model)
    else:
        check_model(args.model)
    out = check_output_folder(args.out)
    run_config = _run_config(args)
    check_config(out, config_of(args.samples, _settings(args), args.batch_size, args.seed, run_config))
    stored_samples(out / SAMPLES_FILE)  # a damaged or repeated sample is an error now, not an average later
    benchmarks = _benchmarks(args)
    check_problem_ids(benchmarks)
    return benchmarks, run_config


def _evaluate(args: argparse.Namespace, prepared: tuple[dict, dict]) -> int:
    from icpo.eval.generation import make_generator
    from icpo.eval.harness import PLOT_FILE, SAMPLES_FILE, evaluate, format_table
    from icpo.models import resolve_model
    from icpo.runfolder import FolderInUse, locked_folder

    benchmarks, run_config = prepared
    try:
        with locked_folder(args.out):
            summary = evaluate(
                make_generator(resolve_model(args.model), args.backend),  # a preset -> its folder
                benchmarks,
                args.out,
                samples=args.samples,
                settings=_settings(args),
                batch_size=args.batch_size,
                seed=args.seed,
                progress=not args.no_progress,
                run_config=run_config,
            )
    except FolderInUse as error:
        print(f"icpo eval: error: {error}", file=sys.stderr)
        return 2
    print(format_table(summary))
    print(f"per-sample lines: {args.out}/{SAMPLES_FILE}; reliability plot: {args.out}/{PLOT_FILE}")
    return 0


run = checked_command(_load_inputs, _evaluate)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on benchmarks or a recipe's held-out split (avg@k, pass@k, confidence)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="icpo eval",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(command="eval")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
