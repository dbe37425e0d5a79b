"""``icpo eval``: evaluate a checkpoint on benchmark presets (also ``python -m icpo.eval.cli``).

Every argument is checked before anything is written or loaded (one ``icpo eval: error:`` line, exit
2); the ``--out`` folder is then locked for the whole run (a second eval on it exits 2 naming the
holder's PID).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from icpo.command import checked_command

DEFAULT_BENCHMARKS = "math500"
# 512 new tokens hold a step-by-step solution of a GSM8K/MATH-500 level problem from an instruct model
# (most end well under 400) at half the cost of 1024; the summary's `truncated` share says when a
# benchmark needs more.
DEFAULT_MAX_NEW_TOKENS = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from icpo.eval.benchmarks import DATA_DIR_ENV, PRESETS, default_data_dir

    parser.add_argument(
        "--model", required=True, help="a Hugging Face model folder, a model preset, or a hub id when online"
    )
    parser.add_argument(
        "--benchmarks", default=DEFAULT_BENCHMARKS, help=f"comma-separated presets: {','.join(PRESETS)}"
    )
    parser.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        help=f"folder holding the benchmark files: ${DATA_DIR_ENV} when set, else ../shared/benchmarks "
        "beside the repository, wherever you run from",
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
    parser.add_argument("--backend", choices=("auto", "transformers", "vllm"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check_model(model: str) -> None:
    """A model is a folder that exists, or (online, or found in the hub cache) a hub id ``org/name``."""
    from icpo.recipe import check_model_folder

    path = Path(model).expanduser()
    if path.exists():
        check_model_folder(str(path))
        return
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ValueError(
            f"model folder {model!r} does not exist (relative to {Path.cwd()}); give the path of a "
            "Hugging Face model folder."
        )
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ValueError(
                f"model {model!r} is neither a folder here (relative to {Path.cwd()}) nor a hub model in "
                "the local cache, and HF_HUB_OFFLINE is set; give the path of a model folder."
            )


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
    return {"model": identity, "model_path": str(args.model), "limit": args.limit}


def _load_inputs(args: argparse.Namespace) -> tuple[dict, dict]:
    """Check every argument, the model, the --out folder (its config.json and samples.jsonl) and every
    benchmark before any work; return the benchmarks and the run's model settings."""
    from icpo.command import check_output_folder
    from icpo.eval.benchmarks import load_benchmark
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

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1 (or left out for every problem), got {args.limit}.")
    check_arguments(args.samples, args.batch_size, _settings(args))
    if args.model in MODEL_PRESETS:  # built into its cache folder when the run starts
        check_preset_available(args.model)
    else:
        _check_model(args.model)
    out = check_output_folder(args.out)
    run_config = _run_config(args)
    check_config(out, config_of(args.samples, _settings(args), args.batch_size, args.seed, run_config))
    stored_samples(out / SAMPLES_FILE)  # a damaged or repeated sample is an error now, not an average later
    names = [name.strip() for name in args.benchmarks.split(",") if name.strip()]
    if not names:
        raise ValueError("--benchmarks is empty; name at least one preset.")
    benchmarks = {name: load_benchmark(name, args.data_dir, limit=args.limit) for name in names}
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
        help="evaluate a model on benchmarks (avg@k, pass@k, confidence)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="icpo eval",
        description="Evaluate a model on benchmark presets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(command="eval")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
