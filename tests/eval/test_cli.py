"""``python -m icpo.eval.cli`` as a real process: killed mid-run, then resumed to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from icpo.eval.cli import main
from icpo.eval.harness import SAMPLES_FILE, read_samples


def _command(model, data_dir, out_dir) -> list[str]:
    return [
        sys.executable, "-m", "icpo.eval.cli", "--model", str(model), "--benchmarks", "math500",
        "--data-dir", str(data_dir), "--out", str(out_dir), "--samples", "2", "--batch-size", "2",
        "--max-new-tokens", "8", "--temperature", "1.0", "--no-progress",
    ]  # fmt: skip


def test_killed_eval_resumes_to_the_uninterrupted_result(tiny_policy, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with (data_dir / "math500.jsonl").open("w") as handle:
        for i in range(8):
            record = {"problem": f"What is {i}+1?", "solution": f"\\boxed{{{i + 1}}}", "answer": str(i + 1),
                      "subject": "Algebra", "level": 1, "unique_id": f"toy/{i}.json"}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    interrupted = tmp_path / "interrupted"
    command = _command(tiny_policy, data_dir, interrupted)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if (interrupted / SAMPLES_FILE).exists() and (interrupted / SAMPLES_FILE).stat().st_size > 0:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(read_samples(interrupted / SAMPLES_FILE))
    assert 0 < written < 16, f"the kill should land mid-run, found {written} of 16 lines"

    resumed = subprocess.run(
        _command(tiny_policy, data_dir, interrupted), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert main(_command(tiny_policy, data_dir, tmp_path / "whole")[3:]) == 0  # the same run, uninterrupted

    def by_key(path):
        return {(r["problem_id"], r["sample"]): r for r in read_samples(path / SAMPLES_FILE)}

    assert len(by_key(interrupted)) == 16
    assert by_key(interrupted) == by_key(tmp_path / "whole")
    assert json.loads((interrupted / "summary.json").read_text()) == json.loads(
        (tmp_path / "whole" / "summary.json").read_text()
    )
    assert "avg@2" in resumed.stdout and "pass@2" in resumed.stdout


def test_register_adds_the_eval_command():
    import argparse

    from icpo.eval.cli import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "--model", "m", "--out", "o", "--benchmarks", "gsm8k,aime24", "--samples", "4"]
    )
    assert args.run is run and args.samples == 4 and args.benchmarks == "gsm8k,aime24"


def test_bad_input_gives_one_error_line_before_any_work(tiny_policy, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["--model", str(tiny_policy / "model.safetensors")], "is a file; give the model's folder"),
        (["--model", str(tmp_path / "missing")], "does not exist"),
        (["--model", str(tiny_policy), "--benchmarks", "gsm9k"], "unknown benchmark 'gsm9k'"),
        (["--model", str(tiny_policy), "--data-dir", str(tmp_path / "none")], "pass --data-dir"),
    ]
    for arguments, message in cases:
        assert main([*arguments, "--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("icpo eval: error: ") and message in lines[0], lines
    assert not out.exists(), "nothing may be written before the input is checked"
