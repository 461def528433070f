"""The training command line: recipes, `lightning` / `astromer fit`, the quickstart end to end with W&B offline,
kill-and-resume, two-process DDP, per-step schedulers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import LightningDataModule, LightningModule
from safetensors.torch import load_file
from transformers import AutoModel

import astromer_hf  # noqa: F401
from astromer_hf.training import (
    AstromerClassification,
    AstromerDataModule,
    AstromerFineTuning,
    AstromerPretraining,
    AstromerWandbLogger,
    SavePretrainedCallback,
)
from astromer_hf.training.cli import AstromerCLI
from wandb_runs import find_offline_runs, metric_values, read_offline_run

ROOT = Path(__file__).resolve().parents[1]
#: The `lightning fit` recipes (recipes/eval_*.yaml are `astromer evaluate` configurations).
RECIPES = sorted(path for path in (ROOT / "recipes").glob("*.yaml") if "trainer" in yaml.safe_load(path.read_text()))
LIGHTNING = ROOT / ".venv" / "bin" / "lightning"
TINY_MODEL = "{hidden_size: 16, num_attention_heads: 2, intermediate_size: 16, window_size: 32}"
#: The quickstart shrunk to seconds: a tiny model, a small simulated survey.
TINY_QUICKSTART = [
    "--model.init_args.config_overrides", TINY_MODEL,
    "--data.init_args.prepare.n_curves", "300",
    "--data.init_args.batch_size", "16",
    "--trainer.max_epochs", "3",
    "--trainer.log_every_n_steps", "2",
]


@pytest.fixture
def isolated_env(tmp_path):
    """No W&B or Hugging Face credentials, a private HOME: runs go offline at once and nothing prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_", "HUGGING"))}
    (tmp_path / "home").mkdir()
    (tmp_path / "netrc").write_text("")
    env.update(HOME=str(tmp_path / "home"), NETRC=str(tmp_path / "netrc"), HF_HOME=str(tmp_path / "hf"))
    return env


def _lightning(args, cwd, env, timeout=300, check=True) -> subprocess.CompletedProcess:
    if not LIGHTNING.exists():
        pytest.skip("the `lightning` console script is installed by scripts/setup.sh into .venv")
    result = subprocess.run([str(LIGHTNING), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _astromer(args, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "astromer"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _quickstart(extra=()) -> list[str]:
    return ["fit", "--config", str(ROOT / "recipes" / "quickstart.yaml"), *TINY_QUICKSTART, *extra]


# -- recipes --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    AstromerPretraining(config_overrides=yaml.safe_load(TINY_MODEL)).model.save_pretrained(folder)
    return folder


def _instantiate(recipe: Path, *overrides: str) -> AstromerCLI:
    return AstromerCLI(
        model_class=LightningModule,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=["--config", str(recipe), *overrides],
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=[path.stem for path in RECIPES])
def test_every_recipe_parses_and_instantiates(recipe, tiny_pretrained, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(recipe.read_text())
    assert isinstance(raw["seed_everything"], int) and not isinstance(raw["seed_everything"], bool)
    starts_from_weights = raw["model"]["class_path"].endswith(("FineTuning", "Classification"))
    cli = _instantiate(recipe, *(["--model.init_args.model", str(tiny_pretrained)] if starts_from_weights else []))
    assert isinstance(cli.model, (AstromerPretraining, AstromerClassification))
    assert isinstance(cli.datamodule, AstromerDataModule)
    assert isinstance(cli.trainer.logger, AstromerWandbLogger) and cli.trainer.logger.mode == "offline"
    monitors = {getattr(c, "monitor", None) for c in cli.trainer.callbacks} - {None}
    expected = "val/loss" if isinstance(cli.model, AstromerClassification) else "val/rmse"
    assert monitors == {expected}
    assert any(isinstance(c, SavePretrainedCallback) for c in cli.trainer.callbacks)
    task = cli.datamodule.hparams.task
    assert task == ("classification" if isinstance(cli.model, AstromerClassification) else "reconstruction")


def test_the_paper_recipes_carry_the_papers_hyperparameters(tiny_pretrained, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    a1 = _instantiate(ROOT / "recipes" / "macho.yaml")
    assert a1.model.model.num_parameters() == 661_505
    config = a1.model.model.config
    assert (config.mask_probed_fraction, config.mask_random_fraction, config.mask_same_fraction) == (0.5, 0.2, 0.2)
    assert (a1.model.hparams.lr, tuple(a1.model.hparams.betas), a1.model.hparams.eps) == (1e-3, (0.9, 0.98), 1e-9)
    assert (a1.datamodule.hparams.batch_size, a1.datamodule.hparams.repeat, a1.datamodule.hparams.bands) == (5000, 5, ["R"])
    patience = {type(c).__name__: getattr(c, "patience", None) for c in a1.trainer.callbacks}["EarlyStopping"]
    assert patience == 200
    a2 = _instantiate(ROOT / "recipes" / "macho_astromer2.yaml")
    assert a2.model.model.num_parameters() == 3_953_410
    assert a2.model.hparams.lr == 1e-5 and a2.datamodule.hparams.batch_size == 2500
    assert {type(c).__name__: getattr(c, "patience", None) for c in a2.trainer.callbacks}["EarlyStopping"] == 20
    finetune = _instantiate(ROOT / "recipes" / "finetune_alcock.yaml", "--model.init_args.model", str(tiny_pretrained))
    assert isinstance(finetune.model, AstromerFineTuning) and finetune.datamodule.hparams.train_windows == "tiling"
    classify = _instantiate(ROOT / "recipes" / "classify_alcock.yaml", "--model.init_args.model", str(tiny_pretrained))
    head = classify.model.hparams.config_overrides
    assert head["freeze_encoder"] and head["classifier_pooling"] == "skip"


# -- the command line -----------------------------------------------------------------------------------------------


def test_lightning_hands_other_commands_to_lightning_sdk(tmp_path, isolated_env):
    missing = _lightning(["studio", "list"], tmp_path, isolated_env, check=False)
    assert missing.returncode == 2 and "pip install lightning-sdk" in missing.stderr
    # A stand-in with lightning-sdk's entry point (`lightning_sdk.cli.entrypoint:main_cli`) records what it receives.
    package = tmp_path / "sdk" / "lightning_sdk" / "cli"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "entrypoint.py").write_text(
        "import sys\n\ndef main_cli():\n    print('lightning-sdk got', sys.argv[1:])\n"
    )
    env = {**isolated_env, "PYTHONPATH": str(tmp_path / "sdk")}
    handed = _lightning(["studio", "list", "--teamspace", "x"], tmp_path, env)
    assert "lightning-sdk got ['studio', 'list', '--teamspace', 'x']" in handed.stdout


def test_astromer_fit_has_the_astromer_defaults(tmp_path, isolated_env):
    for command in ([str(ROOT / ".venv" / "bin" / "astromer")], [sys.executable, "-m", "astromer_hf"]):
        if not Path(command[0]).exists():
            pytest.skip("the `astromer` console script is installed by scripts/setup.sh")
        result = subprocess.run([*command, "fit", "--print_config"], cwd=tmp_path, env=isolated_env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        config = yaml.safe_load(result.stdout)
        assert config["model"]["class_path"] == "astromer_hf.training.AstromerPretraining"
        assert config["data"]["class_path"] == "astromer_hf.training.AstromerDataModule"
        assert config["data"]["init_args"]["prepare"]["survey"] == "synthetic"  # runs with no data at hand
        assert config["trainer"]["logger"]["class_path"] == "astromer_hf.training.AstromerWandbLogger"
        assert config["seed_everything"] == 0


class PlainModule(LightningModule):
    """A module without its own optimiser, for the CLI's --optimizer / --lr_scheduler."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.learning_rates = []

    def training_step(self, batch, batch_idx):
        self.learning_rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return self.layer(batch).pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)


def test_cli_schedulers_step_every_optimizer_step(tmp_path):
    cli = AstromerCLI(
        model_class=LightningModule,
        subclass_mode_model=True,
        args=[
            "fit", "--model", f"{__name__}.PlainModule", "--optimizer", "SGD", "--optimizer.lr", "1.0",
            "--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1", "--lr_scheduler.gamma", "0.5",
            "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
            "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}",
        ],
        save_config_callback=None,
    )
    assert cli.model.learning_rates == [1.0, 0.5, 0.25, 0.125]


# -- the quickstart, end to end -------------------------------------------------------------------------------------


def _summary(workdir: Path) -> dict:
    run = read_offline_run(find_offline_runs(workdir / "outputs")[-1])
    assert run["finished"]
    return run


def test_quickstart_trains_logs_to_wandb_offline_and_writes_a_loadable_model(tmp_path, isolated_env):
    result = _lightning(_quickstart(), tmp_path, isolated_env)
    assert "wandb sync" in result.stdout + result.stderr  # offline, and says how to upload
    # Output to a pipe, not a terminal: one line per epoch instead of a progress bar, then a summary.
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(" · ")[0] for line in epoch_lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val RMSE" in line and "baseline" in line and "R²" in line and "windows/s" in line
               for line in epoch_lines)
    assert "ETA" in epoch_lines[0] and "train RMSE" in epoch_lines[0]
    assert "Finished after 3 epoch(s)" in result.stdout
    assert "outputs/quickstart/pretrained/best" in result.stdout and "last.ckpt" in result.stdout
    assert "W&B run:      outputs/quickstart/wandb/offline-run-" in result.stdout
    assert "litlogger" not in result.stdout + result.stderr and "LeafSpec" not in result.stdout + result.stderr
    assert "Writing model shards" not in result.stdout + result.stderr
    assert "weights_only" not in result.stdout + result.stderr

    run = _summary(tmp_path)
    for key in ("train/loss_step", "train/lr", "train/grad_norm", "train/windows_per_sec"):
        assert metric_values(run, key), key
    for key in ("train/rmse", "train/r2", "val/rmse", "val/r2", "val/baseline_rmse"):
        assert len(metric_values(run, key)) == 3, key
    media = {item["key"] for item in run["media"]}
    assert {"val/reconstruction", "val/attention"} <= media
    assert run["artifacts"], "the best save_pretrained folder is logged as an artifact"
    assert run["config"]["cli"]["model"]["class_path"] == "astromer_hf.training.AstromerPretraining"
    assert "config.yaml" not in run["files"]

    best = tmp_path / "outputs" / "quickstart" / "pretrained" / "best"
    model = AutoModel.from_pretrained(best)
    assert type(model).__name__ == "AstromerModel" and model.config.window_size == 32
    record = json.loads((best / "training_metrics.json").read_text())
    assert record["best_score"] == pytest.approx(min(metric_values(run, "val/rmse")), rel=1e-6)
    assert (tmp_path / "outputs" / "quickstart" / "lightning_config.yaml").exists()
    assert (tmp_path / "outputs" / "quickstart" / "checkpoints" / "last.ckpt").exists()

    # Outside W&B: the CSV logger's metrics and figures, and `astromer plot` on the run folder.
    run = tmp_path / "outputs" / "quickstart"
    assert (run / "metrics.csv").is_file() and list((run / "figures").glob("val_reconstruction_step*.png"))
    plotted = _astromer(["plot", str(run)], tmp_path, isolated_env)
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    for name in ("learning_curve", "reconstruction", "attention"):
        png = run / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    table = [line for line in plotted.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in table] == ["| 1", "| 2", "| 3"]
    assert "Loading weights" not in plotted.stdout + plotted.stderr


def _tiny_recipe(folder: Path, kill: dict | None = None, every_n_train_steps: int = 10) -> Path:
    """The quickstart recipe as written, with ``last.ckpt`` every ``every_n_train_steps`` steps and, when ``kill`` is
    given, a :class:`kill_switch.KillAt` callback that SIGKILLs the run at that point."""
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    callbacks = recipe["trainer"]["callbacks"]
    (last,) = [c for c in callbacks if c["class_path"].endswith("LastCheckpoint")]
    last["init_args"]["every_n_train_steps"] = every_n_train_steps
    if kill is not None:
        callbacks.append({"class_path": "kill_switch.KillAt", "init_args": kill})
    path = folder / ("killed.yaml" if kill else "recipe.yaml")
    path.write_text(yaml.safe_dump(recipe))
    return path


def _tiny_args(recipe: Path, extra=()) -> list[str]:
    return ["fit", "--config", str(recipe), *TINY_QUICKSTART, *extra]


def _tiny_run(recipe: Path, workdir: Path, env: dict, extra=(), check=True) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": str(Path(__file__).parent)}
    return _lightning(_tiny_args(recipe, extra), workdir, env, check=check)


def _last_checkpoint(workdir: Path) -> dict:
    return torch.load(workdir / "outputs" / "quickstart" / "checkpoints" / "last.ckpt", weights_only=False)


def _assert_ended_as(workdir: Path, straight: Path, summary_keys: tuple[str, ...]) -> None:
    """The run in ``workdir`` ended at the uninterrupted run's step, weights (bit for bit) and W&B summary values."""
    final, reference = _last_checkpoint(workdir), _last_checkpoint(straight)
    assert final["global_step"] == reference["global_step"]
    for name, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name
    ours, theirs = _summary(workdir)["summary"], _summary(straight)["summary"]
    for key in summary_keys:
        assert ours[key] == theirs[key], key


def _finished(stdout: str) -> tuple[int, int]:
    """Epochs and steps of the summary line a fit ends with ("Finished after 3 epoch(s), 48 steps in 12 s")."""
    (match,) = re.findall(r"Finished after (\d+) epoch\(s\), (\d+) steps", stdout)
    return int(match[0]), int(match[1])


def _steps_per_epoch(uninterrupted_runs: dict) -> int:
    return _last_checkpoint(uninterrupted_runs["--trainer.max_epochs"])["global_step"] // 3


@pytest.fixture(scope="module")
def uninterrupted_runs(tmp_path_factory):
    """Uninterrupted tiny quickstart runs, one per limit, that the killed-and-resumed runs must reproduce.

    Made once per test session: under pytest-xdist the first worker that needs them runs them in the session's
    shared temporary folder (the parent of the workers' own) while holding a file lock, and the others read them
    (each pair of runs costs ~45 s of CPU)."""
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "uninterrupted-runs"
    limits = (["--trainer.max_steps", "40"], ["--trainer.max_epochs", "3"])
    runs = {limit[0]: folder / limit[0].removeprefix("--trainer.") for limit in limits}
    with FileLock(str(shared / "uninterrupted-runs.lock")):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
            env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_", "HUGGING"))}
            for limit in limits:
                workdir = runs[limit[0]]
                (workdir / "home").mkdir(parents=True, exist_ok=True)
                run_env = {**env, "HOME": str(workdir / "home"), "NETRC": str(workdir / "home" / "netrc")}
                result = _tiny_run(_tiny_recipe(workdir), workdir, run_env, limit)
                (workdir / "stdout.txt").write_text(result.stdout)
            (folder / "done").touch()
    return runs


def test_a_run_stopped_by_max_steps_mid_epoch_validates_and_writes_its_final_checkpoints(uninterrupted_runs):
    """`--trainer.max_steps` that ends inside an epoch (40 = 2 epochs of 16 batches + 8): the run validates at its
    last step, so EarlyStopping and ModelCheckpoint find val/rmse, and the final state is checkpointed."""
    per_epoch = _steps_per_epoch(uninterrupted_runs)
    assert 40 % per_epoch and 40 // per_epoch == 2
    workdir = uninterrupted_runs["--trainer.max_steps"]
    last = _last_checkpoint(workdir)
    assert last["global_step"] == 40 and last["epoch"] == 2
    run = _summary(workdir)
    assert len(metric_values(run, "val/rmse")) == 3  # epochs 0 and 1, and the final step
    best = torch.load(workdir / "outputs" / "quickstart" / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["global_step"] in (per_epoch, 2 * per_epoch, 40)


@pytest.mark.parametrize(
    "limit, kill",
    [
        ("--trainer.max_steps", {"epoch": 1}),   # killed at an epoch boundary: last.ckpt from the end of epoch 0
        ("--trainer.max_steps", {"step": 23}),   # killed mid-epoch: last.ckpt from step 20, inside epoch 1 (16-31)
        ("--trainer.max_epochs", {"step": 23}),
    ],
    ids=["max_steps-epoch_end", "max_steps-mid_epoch", "max_epochs-mid_epoch"],
)
def test_a_run_killed_and_resumed_through_the_cli_ends_as_the_uninterrupted_run(
    limit, kill, uninterrupted_runs, tmp_path, isolated_env
):
    limit_args = [limit, "40" if limit == "--trainer.max_steps" else "3"]
    killed = _tiny_run(_tiny_recipe(tmp_path, kill), tmp_path, isolated_env, limit_args, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    expected_step = _steps_per_epoch(uninterrupted_runs) if "epoch" in kill else 20
    assert _last_checkpoint(tmp_path)["global_step"] == expected_step

    resumed = _tiny_run(_tiny_recipe(tmp_path), tmp_path, isolated_env, [*limit_args, "--ckpt_path", "last"])
    assert "Restored all states" in resumed.stdout + resumed.stderr
    _assert_ended_as(tmp_path, uninterrupted_runs[limit], ("val/rmse", "val/r2", "epoch"))
    # the closing summary counts the epochs and steps of the whole run, the resumed epoch once
    straight_stdout = (uninterrupted_runs[limit] / "stdout.txt").read_text()
    steps = 40 if limit == "--trainer.max_steps" else 3 * _steps_per_epoch(uninterrupted_runs)
    assert _finished(resumed.stdout) == _finished(straight_stdout) == (3, steps)  # 40 steps: 2 epochs and a part


def test_a_run_killed_from_outside_at_any_moment_resumes_to_the_uninterrupted_run(
    uninterrupted_runs, tmp_path, isolated_env
):
    """SIGKILL from outside (an OOM killer, a pre-empted job) as soon as the first ``last.ckpt`` appears, whatever the
    run is doing then, and ``--ckpt_path last`` ends where the uninterrupted run ended."""
    if not LIGHTNING.exists():
        pytest.skip("the `lightning` console script is installed by scripts/setup.sh into .venv")
    recipe = _tiny_recipe(tmp_path)
    last = tmp_path / "outputs" / "quickstart" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([str(LIGHTNING), *_tiny_args(recipe)], cwd=tmp_path, env=isolated_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"

    _tiny_run(recipe, tmp_path, isolated_env, ["--ckpt_path", "last"])
    straight = uninterrupted_runs["--trainer.max_epochs"]
    _assert_ended_as(tmp_path, straight, ("val/rmse", "val/r2", "train/rmse", "epoch"))
    weights = [load_file(d / "outputs" / "quickstart" / "pretrained" / "best" / "model.safetensors")
               for d in (straight, tmp_path)]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name


def test_resuming_with_no_last_checkpoint_says_so_and_starts_from_the_beginning(tmp_path, isolated_env):
    result = _tiny_run(_tiny_recipe(tmp_path), tmp_path, isolated_env,
                       ["--trainer.max_steps", "2", "--ckpt_path", "last"])
    output = result.stdout + result.stderr
    assert "--ckpt_path last: no last checkpoint in" in output and "starts from the beginning" in output
    assert "no last checkpoint available" not in output  # Lightning's own warning, replaced by ours
    assert _last_checkpoint(tmp_path)["global_step"] == 2


def test_a_fast_dev_run_leaves_the_real_outputs_alone(uninterrupted_runs, tmp_path, isolated_env):
    """`--trainer.fast_dev_run` in the folder of a finished run: the best model, the checkpoints and the saved
    configuration stay as the real run left them, and `--ckpt_path last` still resumes the real run."""
    import shutil

    shutil.copytree(uninterrupted_runs["--trainer.max_steps"] / "outputs", tmp_path / "outputs")
    outputs = tmp_path / "outputs" / "quickstart"
    watched = [*outputs.glob("checkpoints/*"), *outputs.glob("pretrained/best/*"), outputs / "lightning_config.yaml"]
    before = {path: path.read_bytes() for path in watched}
    _tiny_run(_tiny_recipe(tmp_path), tmp_path, isolated_env, ["--trainer.fast_dev_run", "true"])
    assert sorted(outputs.glob("checkpoints/*")) == sorted(p for p in watched if p.parent.name == "checkpoints")
    for path, content in before.items():
        assert path.read_bytes() == content, path


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path, isolated_env):
    common = ["--model.init_args.config_overrides", "{hidden_size: 16, num_attention_heads: 2, intermediate_size: 16, "
              "window_size: 32, hidden_dropout_prob: 0.0}", "--trainer.max_epochs", "2",
              "--trainer.accelerator", "cpu", "--data.init_args.prepare.n_curves", "300"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    _lightning(_quickstart([*common, "--data.init_args.batch_size", "32"]), single, isolated_env)
    _lightning(_quickstart([*common, "--data.init_args.batch_size", "16", "--trainer.strategy", "ddp",
                            "--trainer.devices", "2"]), ddp, isolated_env, timeout=600)
    final = [torch.load(d / "outputs" / "quickstart" / "checkpoints" / "last.ckpt", weights_only=False)
             for d in (single, ddp)]
    for name, value in final[0]["state_dict"].items():
        if name.endswith("k_proj.bias"):
            # softmax ignores a bias shared by all keys: its true gradient is 0, so it moves only by float noise,
            # which Adam scales up to full-size steps in either run
            continue
        torch.testing.assert_close(final[1]["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    runs = [_summary(d) for d in (single, ddp)]
    for key in ("val/rmse", "val/r2", "train/rmse"):  # every window once, over the two processes
        assert runs[1]["summary"][key] == pytest.approx(runs[0]["summary"][key], rel=1e-4), key
