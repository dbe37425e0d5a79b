"""``icpo eval``: evaluate a checkpoint on benchmark presets (also ``python -m icpo.eval.cli``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from icpo.cli import checked_command

DEFAULT_BENCHMARKS = "math500"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a Hugging Face model folder (or hub id, when online)")
    parser.add_argument(
        "--benchmarks",
        default=DEFAULT_BENCHMARKS,
        help="comma-separated presets: math500,gsm8k,aime24,amc23,minerva,mmlu_stem,mmlu_pro,theoremqa",
    )
    parser.add_argument(
        "--data-dir", default="../shared/benchmarks", help="folder holding the benchmark files"
    )
    parser.add_argument("--samples", type=int, default=1, help="k: samples per problem (avg@k, pass@k)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    parser.add_argument(
        "--out", required=True, help="run folder: samples.jsonl, summary.json, reliability.png"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="sequences generated together")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("auto", "transformers", "vllm"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _load_inputs(args: argparse.Namespace) -> dict:
    """Check the model folder and load every benchmark before any generation starts."""
    from icpo.eval.benchmarks import load_benchmark
    from icpo.models import resolve_model
    from icpo.recipe import check_model_folder

    args.model = model = resolve_model(args.model)  # a preset name (icpo.models) -> its cached folder
    if (
        Path(model).exists() or Path(model).is_absolute() or model.startswith(".")
    ):  # a local path, not a hub id
        check_model_folder(model)
    names = [name.strip() for name in args.benchmarks.split(",") if name.strip()]
    return {name: load_benchmark(name, args.data_dir, limit=args.limit) for name in names}


def _evaluate(args: argparse.Namespace, benchmarks: dict) -> int:
    from icpo.eval.generation import SamplingSettings, make_generator
    from icpo.eval.harness import PLOT_FILE, SAMPLES_FILE, evaluate, format_table

    settings = SamplingSettings(args.max_new_tokens, args.temperature, args.top_p)
    summary = evaluate(
        make_generator(args.model, args.backend),
        benchmarks,
        args.out,
        samples=args.samples,
        settings=settings,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        run_config={"model": str(args.model), "limit": args.limit},
    )
    print(format_table(summary))
    print(f"per-sample lines: {args.out}/{SAMPLES_FILE}; reliability plot: {args.out}/{PLOT_FILE}")
    return 0


run = checked_command(_load_inputs, _evaluate)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a model on benchmarks (avg@k, pass@k, confidence)")
    add_arguments(parser)
    parser.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="icpo eval", description="Evaluate a model on benchmark presets.")
    add_arguments(parser)
    parser.set_defaults(command="eval")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
