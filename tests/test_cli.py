"""The ``astromer`` and ``lightning`` commands as a new user meets them: quick to answer, and errors that say what
is wrong in a line (the traceback only on request)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASTROMER = ROOT / ".venv" / "bin" / "astromer"
LIGHTNING = ROOT / ".venv" / "bin" / "lightning"


def _run(command: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    if not Path(command[0]).exists():
        pytest.skip("the console scripts are installed by scripts/setup.sh into .venv")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _imported_after(code: str) -> set[str]:
    """The top-level packages imported by running ``code`` in a fresh interpreter."""
    script = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def test_import_and_help_load_neither_torch_nor_transformers():
    """What makes `import astromer_hf` and `astromer --help` answer at once: they import no heavy library."""
    heavy = {"torch", "transformers", "lightning", "datasets", "pandas", "wandb", "matplotlib"}
    assert not heavy & _imported_after("import astromer_hf")
    help_only = "from astromer_hf.cli import build_parser\nbuild_parser().format_help()"
    assert not heavy & _imported_after(help_only)


def test_data_prepare_help_lists_the_surveys_their_configurations_and_settings():
    result = _run([str(ASTROMER), "data", "prepare", "--help"], ROOT)
    assert result.returncode == 0
    for text in ("synthetic: --config macho (default), ogle, ztf", "n_curves=10000", "macho: --config photometry",
                 "download_deadline=", "gaia_dr3:", "ztf:", "ogle3:", "atlas:"):
        assert text in result.stdout, text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["convert", "--from-tf", "missing.zip", "--out", "converted"], "No checkpoint at missing.zip"),
        (["data", "prepare", "synthetic", "--set", "n_curves=abc", "--out", "data"], "n_curves='abc'"),
        (["data", "prepare", "nosuchsurvey", "--out", "data"], "unknown survey 'nosuchsurvey'"),
        (["data", "info", "nowhere"], "nowhere"),
    ],
    ids=["convert-missing-file", "bad-setting", "unknown-survey", "info-missing-folder"],
)
def test_errors_print_one_message_and_the_traceback_only_with_debug(arguments, message, tmp_path):
    result = _run([str(ASTROMER), *arguments], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "--debug" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 6
    debug = _run([str(ASTROMER), "--debug", *arguments], tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_an_unknown_model_name_in_a_recipe_fails_at_once_with_the_known_names(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_"))}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HOME=str(tmp_path), WANDB_MODE="offline")
    result = _run([str(LIGHTNING), "fit", "--config", str(ROOT / "recipes" / "quickstart.yaml"),
                   "--model.init_args.model", "astromer-9"], tmp_path, env)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error and error[0].startswith("lightning fit: error: unknown model name 'astromer-9'")
    assert "astromer-base" in error[0] and "astromer-1" in error[0]
    assert "Union" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was prepared for a run that cannot start


def test_a_recipe_logging_online_without_credentials_fails_at_once_with_what_to_do(tmp_path):
    """``mode: online`` for the W&B logger raises in the logger's constructor; jsonargparse reports a list of loggers
    that fails to build as a Union error whose cause is another member's ("Not a valid subclass of Logger"): the
    logger's own message must be the one printed, before any data are prepared."""
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe["trainer"]["logger"][0]["init_args"]["mode"] = "online"
    (tmp_path / "online.yaml").write_text(yaml.safe_dump(recipe))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_"))}
    env.update(HOME=str(tmp_path))  # no ~/.netrc: no W&B credentials
    result = _run([str(LIGHTNING), "fit", "--config", "online.yaml"], tmp_path, env)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error and error[0].startswith("lightning fit: error: W&B online mode (mode='online') needs credentials")
    assert "WANDB_API_KEY" in error[0]
    assert "Union" not in result.stderr and "Not a valid subclass" not in result.stderr
    assert not (tmp_path / "data").exists()  # failed before the recipe prepared its data


def test_a_missing_model_folder_in_a_recipe_is_named(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_"))}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HOME=str(tmp_path), WANDB_MODE="offline")
    result = _run([str(LIGHTNING), "fit", "--config", str(ROOT / "recipes" / "quickstart.yaml"),
                   "--model.init_args.model", "outputs/old/pretrained/best"], tmp_path, env)
    assert result.returncode == 1
    assert "no model folder at outputs/old/pretrained/best" in result.stderr and "Traceback" not in result.stderr
