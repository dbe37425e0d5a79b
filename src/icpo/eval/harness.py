"""The evaluation loop: generate k samples per problem, grade them, write one JSONL line per sample,
and summarise; resumable after a kill.

The JSONL file (``OUT/samples.jsonl``) is the source of truth. Work is the list of (problem, sample index)
pairs of each benchmark in file order, cut into fixed chunks of ``batch_size``; chunk j is generated with
seed ``seed + crc32(benchmark) + j`` and its lines are appended and flushed together. On restart the
file is read back (a line cut short by a kill is dropped and the file truncated to the last complete
line), finished (benchmark, problem id, sample) triples are skipped, and a partly written chunk is
generated again in full with the same seed, writing only its missing lines: the final file is the one
an uninterrupted run writes. A (benchmark, problem, sample) line present twice (two writers) is an error,
never averaged in. ``OUT/config.json`` records the settings; resuming with other settings is refused
rather than mixing two runs (``check_config`` does that check without writing anything).

Truncation: a completion that reached ``max_new_tokens`` without an end-of-sequence token has
``finished: false`` and ``correct: false`` whatever its last number says (GSM8K problem 0 once scored
"64" from "...16 + 64 ="): an answer the model never finished is not an answer. ``extracted`` still
shows what the grader would have read, for inspection.

A line holds the prompt and the gold answer, except for a private problem (``Problem.private``: GPQA,
whose terms forbid writing its text out), whose line keeps the prompt's SHA-256 instead and no gold; its
id, completion, extracted answer and score are there to inspect.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from icpo.core import group_outcome_shares, overconfident_error_rate, within_group_auroc
from icpo.eval.benchmarks import Problem, build_prompt
from icpo.eval.generation import SamplingSettings
from icpo.eval.metrics import auroc, expected_calibration_error, pass_at_k, reliability_plot
from icpo.rewards import grade_many
from icpo.runfolder import open_for_append, read_json, read_jsonl, write_json_atomically

SAMPLES_FILE, SUMMARY_FILE, CONFIG_FILE, PLOT_FILE = (
    "samples.jsonl",
    "summary.json",
    "config.json",
    "reliability.png",
)


# What summarise reads from each line of samples.jsonl, with the JSON types it may hold.
SAMPLE_FIELDS: dict[str, tuple[type, ...]] = {
    "benchmark": (str,),
    "problem_id": (str,),
    "sample": (int,),
    "correct": (bool, type(None)),
    "confidence": (float, int, type(None)),
}
# Recorded in config.json for whoever reads it, never compared: a moved model folder is the same model.
RECORDED_ONLY = ("model_path",)


def sample_key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["benchmark"], record["problem_id"], record["sample"]


def stored_samples(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a samples file, read without changing it; a line lacking a field of
    ``SAMPLE_FIELDS`` is a ValueError naming file and line, a repeated sample a ``DuplicateRecord``. A
    symlink is refused: the run appends to this file and cuts its partial last line, which must never
    reach a file elsewhere."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symlink (to {os.readlink(path)}); icpo does not follow it. Delete it.")
    return read_jsonl(path, key=sample_key, fields=SAMPLE_FIELDS)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """``stored_samples``, after a final line without its newline (a kill mid-write) is cut from the file
    so that appending continues cleanly."""
    records = stored_samples(path)
    if path.is_file():
        data = path.read_bytes()
        complete = len(data[: data.rfind(b"\n") + 1])
        if complete < len(data):
            with path.open("r+b") as handle:
                handle.truncate(complete)
    return records


def check_arguments(samples: int, batch_size: int, settings: SamplingSettings) -> None:
    """One-line ValueError for a setting no evaluation can run with (raised before anything is written)."""
    if samples < 1:
        raise ValueError(f"samples per problem (--samples) must be >= 1, got {samples}.")
    if batch_size < 1:
        raise ValueError(f"batch size (--batch-size) must be >= 1, got {batch_size}.")
    settings.validate()
    if samples > 1 and settings.temperature == 0:
        raise ValueError(
            f"--samples {samples} at temperature 0 would be {samples} copies of one greedy "
            "answer; set a temperature > 0 (e.g. 1.0) or use 1 sample."
        )


def config_of(
    samples: int, settings: SamplingSettings, batch_size: int, seed: int, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``config.json`` records: everything the samples depend on."""
    return {"samples": samples, "seed": seed, "batch_size": batch_size, **asdict(settings), **(extra or {})}


def check_config(out_dir: str | Path, config: dict[str, Any]) -> None:
    """A one-line ValueError when ``out_dir`` holds a run made with other settings; writes nothing."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.exists():
        return
    fix = "delete the folder (or pass a new --out) and run again."
    previous = read_json(path, fix)
    if not isinstance(previous, dict):
        raise ValueError(f"{path} is not a JSON object of settings; {fix}")
    if "samples" not in previous:  # e.g. --out is a model folder: its config.json is the model's
        raise ValueError(
            f"{path} is not an icpo eval's config.json (a model folder?); pass another --out, eval writes "
            "its own config.json there."
        )
    changed = {
        key: (previous.get(key), value)
        for key, value in config.items()
        if key not in RECORDED_ONLY and previous.get(key) != value
    }
    if changed:
        raise ValueError(
            f"{out_dir} holds a run with other settings {changed} (old, new); resume with the same "
            "settings or pass a new --out directory."
        )


def check_problem_ids(benchmarks: dict[str, Sequence[Problem]]) -> None:
    """A one-line ValueError when a benchmark repeats a problem id (a run could not resume it)."""
    for name, problems in benchmarks.items():
        counts = Counter(problem.id for problem in problems)
        if len(counts) != len(problems):
            repeated = sorted(i for i, count in counts.items() if count > 1)[:5]
            raise ValueError(
                f"benchmark {name!r} has repeated problem ids {repeated}; ids must be unique to resume."
            )


def evaluate(
    generator: Any,
    benchmarks: dict[str, Sequence[Problem]],
    out_dir: str | Path,
    samples: int = 1,
    settings: SamplingSettings | None = None,
    batch_size: int = 16,
    seed: int = 0,
    run_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Generate ``samples`` completions per problem of each benchmark, grade them, append them to
    ``out_dir/samples.jsonl`` as they finish, then write and return the summary (``summarise``) of these
    benchmarks and of every other benchmark an earlier run of this folder stored (kept, not dropped)."""
    settings = settings or SamplingSettings()
    check_arguments(samples, batch_size, settings)
    out_dir = Path(out_dir)
    config = config_of(samples, settings, batch_size, seed, run_config)
    check_config(out_dir, config)
    check_problem_ids(benchmarks)
    samples_path = out_dir / SAMPLES_FILE
    stored = read_samples(samples_path)
    done = {sample_key(r) for r in stored}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(out_dir / CONFIG_FILE, config)

    with open_for_append(samples_path) as sink:
        for name, problems in benchmarks.items():
            work = [(problem, index) for problem in problems for index in range(samples)]
            chunks = [work[start : start + batch_size] for start in range(0, len(work), batch_size)]
            todo = [
                (number, chunk)
                for number, chunk in enumerate(chunks)
                if any((name, p.id, i) not in done for p, i in chunk)
            ]
            bar = tqdm(total=len(work), desc=name, unit="sample", disable=not progress)
            bar.update(len(work) - sum(len(chunk) for _, chunk in todo))
            for number, chunk in todo:
                prompts = [build_prompt(generator.tokenizer, p.question, p.system) for p, _ in chunk]
                generations = generator.generate(
                    prompts, settings, seed=seed + zlib.crc32(name.encode()) + number
                )
                verdicts = _grade_chunk(chunk, generations)
                for (problem, index), prompt, generation, verdict in zip(
                    chunk, prompts, generations, verdicts, strict=True
                ):
                    if (name, problem.id, index) in done:
                        continue
                    record = {
                        "benchmark": name,
                        "problem_id": problem.id,
                        "sample": index,
                        "completion": generation.text,
                        "extracted": verdict.extracted,
                        "correct": verdict.correct if generation.finished else False,
                        "confidence": None if math.isnan(generation.confidence) else generation.confidence,
                        "num_tokens": generation.num_tokens,
                        "finished": generation.finished,
                        **_problem_text(problem, prompt),
                    }
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                os.fsync(sink.fileno())
                bar.update(len(chunk))
            bar.close()
    names = dict.fromkeys([*benchmarks, *(record["benchmark"] for record in stored)])
    return summarise(out_dir, list(names), samples)


def _problem_text(problem: Problem, prompt: str) -> dict[str, Any]:
    """What a sample line keeps of its problem: the prompt and the gold answer, or for a private
    problem (GPQA, whose terms forbid writing its text out) only the prompt's SHA-256."""
    if problem.private:
        return {"prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()}
    return {"prompt": prompt, "gold": _jsonable(problem.gold)}


def _grade_chunk(chunk, generations):
    """Grade a chunk that may mix graders (one call per grader, original order kept)."""
    verdicts: list[Any] = [None] * len(chunk)
    for grader in {problem.grader for problem, _ in chunk}:
        rows = [i for i, (problem, _) in enumerate(chunk) if problem.grader == grader]
        graded = grade_many(
            grader,
            [generations[i].text for i in rows],
            [chunk[i][0].gold for i in rows],
            [chunk[i][0].num_choices for i in rows],
        )
        for i, verdict in zip(rows, graded, strict=True):
            verdicts[i] = verdict
    return verdicts


def _none_if_nan(value: float) -> float | None:
    """JSON has no NaN: an undefined metric is written as null."""
    return None if math.isnan(value) else value


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)


def summarise(out_dir: str | Path, names: Sequence[str], samples: int) -> dict[str, dict[str, Any]]:
    """Metrics per benchmark from ``samples.jsonl``; writes ``summary.json`` and ``reliability.png``.

    Per benchmark: problems, samples, unscored (correct is None; counted as wrong), truncated (share of
    samples cut at the token limit; counted as wrong), avg@k, pass@j for j = 1, 2, 4, ... and k, and over
    samples with a confidence: auroc (pooled over all samples), within_group_auroc and
    overconfident_error_rate (per problem group of k samples, icpo.core's definitions: mixed groups only,
    null when no group is mixed or k = 1), ece (of exp(confidence)), confidence_mean, and the shares of
    groups that are all wrong / mixed / all correct. An undefined metric is null (JSON has no NaN).
    """
    out_dir = Path(out_dir)
    by_benchmark: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for record in read_samples(out_dir / SAMPLES_FILE):
        by_benchmark[record["benchmark"]][record["problem_id"]].append(record)
    summary, curves = {}, {}
    for name in names:
        groups = [sorted(g, key=lambda r: r["sample"]) for g in by_benchmark.get(name, {}).values()]
        groups = [g for g in groups if len(g) == samples]
        records = [r for g in groups for r in g]
        if not records:
            continue
        correct = [r["correct"] is True for r in records]
        row: dict[str, Any] = {
            "problems": len(groups),
            "samples": samples,
            "unscored": sum(r["correct"] is None for r in records),
            "truncated": sum(not r.get("finished", True) for r in records) / len(records),
            f"avg@{samples}": sum(correct) / len(correct),
        }
        ks = sorted({k for k in (2**p for p in range(samples.bit_length())) if k <= samples} | {samples})
        for k in ks:
            row[f"pass@{k}"] = sum(
                pass_at_k(samples, sum(r["correct"] is True for r in g), k) for g in groups
            ) / len(groups)
        scored = [(r["confidence"], r["correct"] is True) for r in records if r["confidence"] is not None]
        confidences, labels = [c for c, _ in scored], [label for _, label in scored]
        probabilities = [math.exp(c) for c in confidences]
        confidence = torch.tensor([math.nan if r["confidence"] is None else r["confidence"] for r in records])
        is_correct = torch.tensor(correct)
        row["confidence_mean"] = sum(confidences) / len(confidences) if confidences else None
        row["auroc"] = auroc(confidences, labels)
        grouped = samples >= 2  # one sample per problem has no group to compare within
        row["within_group_auroc"] = (
            _none_if_nan(within_group_auroc(confidence, is_correct, samples)) if grouped else None
        )
        row["overconfident_error_rate"] = (
            _none_if_nan(overconfident_error_rate(confidence, is_correct, samples)) if grouped else None
        )
        row["ece"] = expected_calibration_error(probabilities, labels) if probabilities else None
        shares = group_outcome_shares(is_correct, samples) if grouped else {}
        for outcome in ("all_wrong", "mixed", "all_correct"):
            row[f"groups_{outcome}"] = _none_if_nan(shares[outcome]) if grouped else None
        summary[name] = row
        if probabilities:
            curves[name] = (probabilities, labels)
    write_json_atomically(out_dir / SUMMARY_FILE, summary)
    if curves:
        reliability_plot(curves, out_dir / PLOT_FILE)
    return summary


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per benchmark, one column per metric."""
    columns = sorted({key for row in summary.values() for key in row}, key=_column_order)
    header = ["benchmark", *columns]
    lines = [header] + [
        [name, *(_cell(row.get(column)) for column in columns)] for name, row in summary.items()
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def _column_order(column: str) -> tuple[int, int, str]:
    fixed = ["problems", "samples", "unscored", "truncated"]
    if column in fixed:
        return (0, fixed.index(column), column)
    if "@" in column:
        kind, k = column.split("@")
        return (1, int(k) * 2 + (kind == "pass"), column)
    return (2, 0, column)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
