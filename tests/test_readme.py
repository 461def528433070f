"""The README's two commands: CI runs the test command verbatim, and the main job's command runs; and its Python
example runs. (Every other command of the README is walked by tests/test_docs_examples.py.)"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from astromer_hf.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_command():
    main_job, tests = readme_commands()
    assert main_job.startswith("bash scripts/setup.sh && ") and tests.startswith("bash scripts/setup.sh && ")
    assert "pytest" in tests
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci


def test_readme_main_job_runs(tmp_path):
    """The main job, with the quickstart shrunk to seconds by command-line overrides, run in a scratch folder
    (its data/ and outputs/ land there) without W&B credentials."""
    main_job = readme_commands()[0].removeprefix("bash scripts/setup.sh && ")
    assert main_job == ".venv/bin/lightning fit --config recipes/quickstart.yaml"
    if not (ROOT / ".venv" / "bin" / "lightning").exists():
        pytest.skip("the README's environment (.venv, made by scripts/setup.sh) is not set up")
    command = main_job.replace(".venv/", f"{ROOT}/.venv/").replace("recipes/", f"{ROOT}/recipes/")
    command += (" --model.init_args.config_overrides '{hidden_size: 16, num_attention_heads: 2, intermediate_size: 16}'"
                " --data.init_args.prepare.n_curves 60 --trainer.max_epochs 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_TOKEN"))}
    (tmp_path / "netrc").write_text("")
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "netrc"))
    result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb sync" in result.stdout + result.stderr
    assert (tmp_path / "data" / "synthetic-quickstart" / "train").is_dir()
    assert (tmp_path / "outputs" / "quickstart" / "pretrained" / "best" / "model.safetensors").exists()


def test_demo_runs_with_random_weights():
    if not (ROOT / ".venv" / "bin" / "astromer").exists():
        pytest.skip("the README's environment (.venv, made by scripts/setup.sh) is not set up")
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "astromer"), "demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANDOM weights" in result.stdout
    assert "per-observation embeddings: (" in result.stdout and "cleaning:" in result.stdout


def test_demo_with_converted_weights(reference_dir, tmp_path, capsys):
    out = tmp_path / "astromer-1-macho"
    assert main(["convert", "--from-tf", str(reference_dir / "macho_a0.zip"), "--out", str(out)]) == 0
    assert main(["demo", "--model", str(out), "--per-class", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"weights from {out}" in printed and "661,505 parameters" in printed
    rmse = float(re.search(r"RMSE ([0-9.]+) mag", printed).group(1))
    assert 0.0 < rmse < 1.0


def test_python_dash_m_runs_the_astromer_command():
    result = subprocess.run(
        [sys.executable, "-m", "astromer_hf", "convert", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--from-tf" in result.stdout
    result = subprocess.run([sys.executable, "-m", "astromer_hf", "demo", "--per-class", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--per-class must be at least 2" in result.stderr


def test_readme_python_example_runs(reference_dir, tmp_path, monkeypatch):
    """The "Use from Python" block as written, offline: ``paths`` names the package's example curves saved as text
    files, and ``astromer-base`` is converted from the released checkpoint through ASTROMER_HF_RELEASE_MIRROR."""
    from hub_server import hub_offline
    from test_docs_examples import page_blocks

    from astromer_hf.example_lightcurves import make_example_lightcurves

    for name in list(os.environ):
        if name.startswith(("ASTROMER_", "HF_TOKEN")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ASTROMER_HF_RELEASE_MIRROR", str(reference_dir))
    monkeypatch.setenv("ASTROMER_HF_RELEASES", str(tmp_path / "releases"))
    hub_offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    curves, _ = make_example_lightcurves(n_per_class=1)
    paths = []
    for index, curve in enumerate(curves):
        path = tmp_path / f"curve_{index}.dat"
        path.write_text("\n".join(" ".join(f"{value:.6f}" for value in row) for row in curve) + "\n")
        paths.append(path)
    (block,) = [block for block in page_blocks("README.md") if block.lang == "python"]
    namespace = {"__name__": "__readme__", "paths": paths}
    exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)  # noqa: S102
    assert namespace["out"].last_hidden_state.shape[1:] == (200, 256)
    assert namespace["result"].vectors.shape == (len(curves), 256) and namespace["result"].kept.all()
    assert "cleaning" in str(namespace["processor"].last_cleaning_report).lower()
