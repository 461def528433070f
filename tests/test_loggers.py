"""The training loggers: W&B mode resolution (never a prompt, never a long wait), real offline W&B and trackio runs
of a tiny Lightning fit read back from disk, and :func:`log_figure` with TensorBoard and CSV loggers.

The environment is isolated for the whole module: HOME, W&B's and Hugging Face's directories live in a temporary
folder, no API key or proxy is visible, and the only network traffic is TCP connects to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from astromer_hf.training import loggers as loggers_module
from astromer_hf.training.figures import confusion_matrix_figure
from astromer_hf.training.loggers import AstromerWandbLogger, TrackioLogger, log_figure, resolve_wandb_mode

from wandb_runs import find_offline_runs, metric_values, read_offline_run

pytestmark = pytest.mark.timeout(180)

FAKE_KEY = "0123456789abcdef" * 5  # 80 characters, the shape of a W&B key; never sent anywhere

_CLEARED_VARIABLES = (
    "WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DISABLED", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_PROJECT",
    "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_SWEEP_ID",
    "TRACKIO_DIR", "TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
    "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
)


def _teardown_wandb() -> None:
    """Reset wandb's process-wide state (its settings are read from the environment once per setup)."""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


@pytest.fixture(scope="module", autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory):
    """A private HOME, empty netrc and W&B / Hugging Face directories for the whole module."""
    root = tmp_path_factory.mktemp("logger-env")
    home = root / "home"
    home.mkdir()
    netrc_file = root / "empty_netrc"
    netrc_file.write_text("")
    _teardown_wandb()
    with pytest.MonkeyPatch.context() as patch:
        for name in _CLEARED_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(home))
        patch.setenv("NETRC", str(netrc_file))
        for name, folder in {
            "WANDB_DIR": "wandb-dir",
            "WANDB_CONFIG_DIR": "wandb-config",
            "WANDB_CACHE_DIR": "wandb-cache",
            "WANDB_DATA_DIR": "wandb-data",
            "WANDB_ARTIFACT_DIR": "wandb-artifacts",
            "HF_HOME": "hf-home",
            "XDG_CACHE_HOME": "xdg-cache",
            "XDG_CONFIG_HOME": "xdg-config",
            "XDG_DATA_HOME": "xdg-data",
        }.items():
            (root / folder).mkdir()
            patch.setenv(name, str(root / folder))
        patch.setenv("NO_PROXY", "*")
        patch.setenv("WANDB_ERROR_REPORTING", "false")
        yield root
        _teardown_wandb()


def _free_port() -> int:
    """A 127.0.0.1 port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _listening_server():
    """A 127.0.0.1 TCP listener (connections are accepted by the kernel; nothing is ever read or sent): yields its
    port and a function that counts (and takes) the connections made to it so far."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)

    def connections() -> int:
        count = 0
        time.sleep(0.1)  # let a connection in flight reach the queue
        while True:
            try:
                server.accept()[0].close()
            except BlockingIOError:
                return count
            count += 1

    try:
        yield server.getsockname()[1], connections
    finally:
        server.close()


# ------------------------------------------------------------------------------------------------------------------
# W&B mode resolution
# ------------------------------------------------------------------------------------------------------------------


def test_auto_without_credentials_is_offline_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _listening_server() as (port, connections):
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        logger = AstromerWandbLogger(save_dir=tmp_path, mode="auto", online_timeout=5.0)
        start = time.monotonic()
        assert logger.mode == "offline"
        assert time.monotonic() - start < 2.0  # well under online_timeout; includes wandb's first import
        assert "no W&B credentials" in logger.mode_reason
        assert connections() == 0, "no connection should be attempted without credentials"
    assert not (tmp_path / "wandb").exists(), "resolving the mode must not start wandb"


def test_auto_with_key_but_nothing_listening_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    mode, reason = resolve_wandb_mode("auto", online_timeout=2.0)
    assert time.monotonic() - start < 2.5
    assert mode == "offline"
    assert f"127.0.0.1:{port} not reachable" in reason


def test_auto_gives_up_after_online_timeout_when_connect_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stalled_connect(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(loggers_module.socket, "create_connection", stalled_connect)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        start = time.monotonic()
        mode, reason = resolve_wandb_mode("auto", online_timeout=0.5)
        elapsed = time.monotonic() - start
    finally:
        release.set()
    assert mode == "offline" and "api.wandb.ai:443 not reachable within 0.5 s" in reason
    assert 0.4 < elapsed < 1.5


def test_auto_with_key_and_reachable_host_is_online(monkeypatch: pytest.MonkeyPatch) -> None:
    with _listening_server() as (port, connections):
        monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        assert resolve_wandb_mode("auto", online_timeout=2.0)[0] == "online"
        assert connections() == 1
        # an explicit offline request never probes
        assert resolve_wandb_mode("offline") == ("offline", "mode='offline'")
        assert connections() == 0


def test_netrc_entry_for_the_api_host_counts_as_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def credentials_available() -> bool:  # online_timeout=0: credentials are checked, no connection is attempted
        reason = resolve_wandb_mode("auto", online_timeout=0)[1]
        assert "allows no connection attempt" in reason or "no W&B credentials" in reason, reason
        return "no W&B credentials" not in reason

    netrc_file = tmp_path / "netrc"
    # the machine is the URL's host[:port], as `wandb login` writes it and wandb.init reads it
    netrc_file.write_text("machine 127.0.0.1:9\n  login user\n  password " + FAKE_KEY + "\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    assert credentials_available()
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    assert not credentials_available()  # the entry is for another host
    # wandb's default address (CoreWeave Forge in wandb 0.31) accepts the key saved for api.wandb.ai
    monkeypatch.delenv("WANDB_BASE_URL")
    netrc_file.write_text("machine api.wandb.ai\n  login user\n  password " + FAKE_KEY + "\n")
    assert credentials_available()


@pytest.mark.parametrize(
    ("value", "expected"), [("dryrun", "offline"), ("offline", "offline"), ("disabled", "disabled")]
)
def test_wandb_mode_variable_is_honoured(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("WANDB_MODE", value)
    assert resolve_wandb_mode("auto") == (expected, f"WANDB_MODE={value}")


@pytest.mark.parametrize("mode", ["auto", "offline"])
@pytest.mark.parametrize(("value", "message"), [("", r"WANDB_MODE is set but empty.*unset WANDB_MODE"),
                                                ("sometimes", r"WANDB_MODE='sometimes' is not a W&B mode")])
def test_a_wandb_mode_variable_wandb_rejects_is_named_before_wandb_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str, value: str, message: str
) -> None:
    monkeypatch.setenv("WANDB_MODE", value)  # wandb.init would fail on it in any mode, with pydantic's message
    logger = AstromerWandbLogger(save_dir=tmp_path, mode=mode)
    with pytest.raises(ValueError, match=message):
        logger.experiment
    with pytest.raises(ValueError, match=message):
        resolve_wandb_mode(mode)
    assert not list(tmp_path.rglob("*.wandb"))  # no run was started


def test_online_without_credentials_fails_early(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WANDB_API_KEY"):
        AstromerWandbLogger(save_dir=tmp_path, mode="online")
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(ValueError, match="needs credentials"):
        resolve_wandb_mode("auto")
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValueError, match="not a W&B mode"):
        resolve_wandb_mode("auto")
    with pytest.raises(ValueError, match="mode must be"):
        AstromerWandbLogger(save_dir=tmp_path, mode="cloud")  # type: ignore[arg-type]


def test_unstarted_logger_finalizes_without_starting_a_run(tmp_path: Path) -> None:
    logger = AstromerWandbLogger(save_dir=tmp_path / "never", mode="offline")
    logger.finalize("success")
    logger.finalize("failed")
    assert not (tmp_path / "never").exists()
    assert logger.run_dir is None


# ------------------------------------------------------------------------------------------------------------------
# A real tiny fit
# ------------------------------------------------------------------------------------------------------------------


class TinyModule(pl.LightningModule):
    """A linear model on random tensors that logs a step metric, an epoch metric, a figure and, at the end of
    training, a ``save_pretrained``-like folder."""

    def __init__(self, lr: float = 0.05, pretrained_dir: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained_dir"])
        self.layer = torch.nn.Linear(3, 1)
        self.pretrained_dir = pretrained_dir
        self.logged: dict[str, list[float]] = {"train/loss": [], "train/marker": []}

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(self.layer(inputs), targets)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        self.logged["train/loss"].append(float(loss.detach()))
        return loss

    def on_train_epoch_end(self) -> None:
        marker = self.current_epoch + 0.25
        self.log("train/marker", marker)
        self.logged["train/marker"].append(marker)
        figure = confusion_matrix_figure(np.array([[3, 1], [0, 4]]), ["a", "b"])
        log_figure(self.logger, "val/confusion", figure, self.global_step)

    def on_train_end(self) -> None:
        if self.pretrained_dir is None:
            return
        folder = Path(self.pretrained_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "astromer", "hidden_size": 4}))
        (folder / "model.safetensors").write_bytes(b"\0" * 64)
        self.logger.log_pretrained_folder(folder, name="astromer-tiny", metadata={"epoch": self.current_epoch})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _fit(logger, root: Path, pretrained_dir: Path | None = None) -> TinyModule:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    module = TinyModule(pretrained_dir=None if pretrained_dir is None else str(pretrained_dir))
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=root,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    return module


@pytest.fixture(scope="module")
def wandb_fit(isolated_env: Path):
    """One offline W&B fit (auto mode, no credentials), read back from disk."""
    save_dir = isolated_env / "wandb-fit"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        logger = AstromerWandbLogger(
            save_dir=save_dir, name="tiny-fit", project="astromer_hf_tests", online_timeout=2.0
        )
        logger.log_hyperparams({"cli": {"model": {"lr": 0.05, "widths": [1, 2]}}, "seed": 3})
        module = _fit(logger, isolated_env, pretrained_dir=isolated_env / "pretrained")
        logger.finalize("success")  # already finalized by Lightning: must do nothing
    runs = find_offline_runs(save_dir)
    return {"logger": logger, "module": module, "stderr": stderr.getvalue(), "runs": runs,
            "run": read_offline_run(runs[0]) if runs else None}


def test_wandb_fit_is_offline_with_one_run_and_a_sync_hint(wandb_fit) -> None:
    logger, runs = wandb_fit["logger"], wandb_fit["runs"]
    assert logger.mode == "offline"
    assert len(runs) == 1, "finalize after fit must not start another run"
    assert logger.run_dir is not None and logger.run_dir.resolve() == runs[0]
    hints = [line for line in wandb_fit["stderr"].splitlines() if line.startswith("W&B is offline")]
    assert len(hints) == 1
    assert hints[0].endswith(f"wandb sync {logger.run_dir}")
    run = wandb_fit["run"]
    assert run["run"]["name"] == "tiny-fit" and run["run"]["project"] == "astromer_hf_tests"
    assert run["run"]["id"] == logger.version


def test_wandb_fit_metrics_are_in_the_run(wandb_fit) -> None:
    run, module = wandb_fit["run"], wandb_fit["module"]
    losses = metric_values(run, "train/loss")
    assert len(losses) == 8  # 2 epochs x 4 batches, logged every step
    assert losses == pytest.approx(module.logged["train/loss"], rel=1e-6)
    assert metric_values(run, "train/marker") == [0.25, 1.25]
    assert run["summary"]["train/marker"] == 1.25
    assert run["summary"]["train/loss"] == pytest.approx(module.logged["train/loss"][-1], rel=1e-6)
    assert "trainer/global_step" in run["summary"]


def test_wandb_fit_config_holds_the_hyperparameters(wandb_fit) -> None:
    config = wandb_fit["run"]["config"]
    assert config["lr"] == 0.05 and config["seed"] == 3
    assert config["cli"] == {"model": {"lr": 0.05, "widths": [1, 2]}}


def test_wandb_fit_images_are_in_the_run(wandb_fit) -> None:
    run = wandb_fit["run"]
    images = [item for item in run["media"] if item["key"] == "val/confusion"]
    assert len(images) == 2 and all(item["type"] == "image-file" for item in images)
    assert [item["row"]["trainer/global_step"] for item in images] == [4, 8]
    for item in images:
        assert item["path"] in run["files"]
        assert (run["dir"] / "files" / item["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wandb_fit_pretrained_folder_is_a_model_artifact(wandb_fit) -> None:
    artifacts = wandb_fit["run"]["artifacts"]
    assert len(artifacts) == 1
    artifact = artifacts[0]
    assert artifact["name"] == "astromer-tiny" and artifact["type"] == "model"
    assert {"best", "latest"} <= set(artifact["aliases"])
    assert artifact["files"] == ["config.json", "model.safetensors"]
    assert artifact["metadata"]["epoch"] == 2 and artifact["metadata"]["model_type"] == "astromer"


def test_wandb_fit_run_is_finished_and_wrote_no_config_yaml(wandb_fit) -> None:
    run = wandb_fit["run"]
    assert run["finished"] and run["exit_code"] == 0
    assert "config.yaml" not in run["files"] and "config.yaml" not in run["saved_files"]


def test_logging_after_finalize_resumes_the_same_run_id(tmp_path: Path, monkeypatch, capfd) -> None:
    from wandb.errors import term

    monkeypatch.setattr(term, "_printed_messages", set())  # wandb prints a warning once per process: show it again
    logger = AstromerWandbLogger(save_dir=tmp_path, name="resumed", mode="offline")
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")  # e.g. the end of Trainer.fit
    run_id = logger.version
    logger.log_metrics({"test/loss": 2.0}, step=1)  # e.g. Trainer.test afterwards
    logger.finalize("success")
    assert logger.version == run_id
    first, second = (read_offline_run(path) for path in find_offline_runs(tmp_path))
    assert first["run"]["id"] == second["run"]["id"] == run_id
    assert metric_values(first, "train/loss") == [1.0] and metric_values(second, "test/loss") == [2.0]
    assert first["finished"] and second["finished"]
    # neither start passes wandb.init an unset setting it warns about ("The anonymous setting has no effect")
    assert "anonymous" not in capfd.readouterr().err


def test_disabled_mode_logs_nothing_and_never_fails(tmp_path: Path) -> None:
    logger = AstromerWandbLogger(save_dir=tmp_path, mode="disabled")
    logger.log_metrics({"train/loss": 1.0}, step=0)
    assert log_figure(logger, "val/confusion", confusion_matrix_figure(np.eye(2), ["a", "b"]), 0) is None
    logger.finalize("success")
    assert logger.run_dir is None
    assert find_offline_runs(tmp_path) == []


@contextlib.contextmanager
def _rejecting_http_server():
    """A 127.0.0.1 HTTP server that answers every request with 401, as W&B does for a revoked key."""

    class Reject(http.server.BaseHTTPRequestHandler):
        def _reject(self) -> None:
            body = b'{"errors": [{"message": "invalid API key"}]}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _reject

        def log_message(self, *args) -> None:
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Reject)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_auto_falls_back_offline_when_the_server_rejects_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with _rejecting_http_server() as port:
        monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY[:40])
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        logger = AstromerWandbLogger(save_dir=tmp_path, name="rejected", online_timeout=2.0)
        assert logger.mode == "online"
        start = time.monotonic()
        with pytest.warns(UserWarning, match="W&B online start failed"):
            logger.log_metrics({"train/loss": 0.5}, step=0)
        assert time.monotonic() - start < 30
        assert logger.mode == "offline" and "online start failed" in logger.mode_reason
        logger.finalize("success")
    _teardown_wandb()
    (run_dir,) = find_offline_runs(tmp_path)
    run = read_offline_run(run_dir)
    assert metric_values(run, "train/loss") == [0.5] and run["finished"]


# ------------------------------------------------------------------------------------------------------------------
# trackio
# ------------------------------------------------------------------------------------------------------------------


def _trackio_rows(database: Path, run_name: str) -> tuple[list[tuple[int, dict]], dict]:
    """``[(step, metrics)]`` and the config trackio stored for ``run_name``."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT step, metrics FROM metrics WHERE run_name = ? ORDER BY id", (run_name,)
        ).fetchall()
        configs = connection.execute("SELECT config FROM configs WHERE run_name = ?", (run_name,)).fetchall()
    return [(step, json.loads(metrics)) for step, metrics in rows], (json.loads(configs[-1][0]) if configs else {})


#: A trackio fit in a fresh process: trackio reads its storage directory (TRACKIO_DIR) once, when first imported.
_TRACKIO_FIT = """
import json, sys
from pathlib import Path
import torch
tests, root = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, tests)
from test_loggers import _fit
from astromer_hf.training.loggers import TrackioLogger

storage = root / "trackio-store"
logger = TrackioLogger(project="tiny-trackio", name="run-1", save_dir=root / "trackio-out", trackio_dir=storage)
names = [logger.name, logger.version]
module = _fit(logger, root)
logger.finalize("success")
logger.finalize("success")  # idempotent
try:  # the same process cannot move trackio's directory
    TrackioLogger(project="astromer-hf-second", name="run-x", trackio_dir=root / "trackio-other").experiment
    refused = ""
except RuntimeError as error:
    refused = str(error)
second = TrackioLogger(project="astromer-hf-second", name="run-2", trackio_dir=storage, config={"seed": 1})
second.log_metrics({"score": torch.tensor(0.5)}, step=0)
second.finalize("success")
print(json.dumps({"names": names, "losses": module.logged["train/loss"], "trackio_dir": str(logger.trackio_dir),
                  "log_dir": logger.log_dir, "refused": refused}))
"""


def test_trackio_fit_is_stored_in_the_chosen_directory(isolated_env: Path) -> None:
    pytest.importorskip("trackio")
    root = isolated_env / "trackio-fit"
    root.mkdir()
    done = subprocess.run([sys.executable, "-c", _TRACKIO_FIT, str(Path(__file__).parent), str(root)],
                          capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    storage = root / "trackio-store"
    assert result["names"] == ["tiny-trackio", "run-1"]

    rows, config = _trackio_rows(storage / "tiny-trackio.db", "run-1")
    losses = [metrics["train/loss"] for _, metrics in rows if "train/loss" in metrics]
    assert losses == pytest.approx(result["losses"], rel=1e-6)
    assert [metrics["train/marker"] for _, metrics in rows if "train/marker" in metrics] == [0.25, 1.25]
    images = [(step, metrics["val/confusion"]) for step, metrics in rows if "val/confusion" in metrics]
    assert [step for step, _ in images] == [4, 8]
    for _, image in images:
        assert image["_type"] == "trackio.image"
        assert (storage / "media" / image["file_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert config["lr"] == 0.05
    assert result["trackio_dir"] == str(storage.resolve())
    assert result["log_dir"] == str(root / "trackio-out" / "tiny-trackio" / "run-1")

    # a second logger in the same process uses the same directory; another directory is refused, with the reason
    assert "TRACKIO_DIR" in result["refused"] and not (root / "trackio-other").exists()
    rows, config = _trackio_rows(storage / "astromer-hf-second.db", "run-2")
    assert rows == [(0, {"score": 0.5})] and config["seed"] == 1
    assert not (isolated_env / "hf-home" / "trackio").exists(), "nothing in trackio's default directory"


def test_trackio_missing_package_error_names_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trackio", None)
    with pytest.raises(ModuleNotFoundError, match="pip install trackio"):
        TrackioLogger(project="p", trackio_dir="unused").experiment


# ------------------------------------------------------------------------------------------------------------------
# log_figure with other loggers
# ------------------------------------------------------------------------------------------------------------------


def test_log_figure_to_tensorboard_writes_an_image_summary(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    logger = TensorBoardLogger(save_dir=tmp_path, name="tb")
    figure = confusion_matrix_figure(np.eye(3), ["a", "b", "c"])
    assert log_figure(logger, "val/confusion", figure, step=3) is None
    assert not figure.axes, "the figure is closed (cleared) afterwards"
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir, size_guidance={IMAGES: 0})
    events.Reload()
    assert "val/confusion" in events.Tags()["images"]
    (image,) = events.Images("val/confusion")
    assert image.step == 3 and image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_figure_logged_by_two_loggers_is_drawn_once_and_again_when_it_changes(tmp_path: Path) -> None:
    """The recipes log each figure to W&B (pixels from ``figure_to_array``) and then to the CSV logger (a PNG): the
    PNG is written from the pixels already rendered, identical to them, and a figure changed since is drawn anew."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imread

    from astromer_hf.training.figures import figure_to_array

    logger = CSVLogger(save_dir=tmp_path, name="csv")
    figure = confusion_matrix_figure(np.eye(2), ["a", "b"])
    draws = []
    figure.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    pixels = figure_to_array(figure)  # what log_figure hands W&B
    path = log_figure(logger, "val/confusion", figure, step=1, close=False)
    assert len(draws) == 1
    np.testing.assert_array_equal((imread(path)[..., :3] * 255).round().astype(np.uint8), pixels)

    figure.axes[0].set_title("changed")
    changed = log_figure(logger, "val/confusion", figure, step=2, close=False)
    assert len(draws) == 2  # the PNG alone: one draw
    assert not np.array_equal(imread(changed)[..., :3], imread(path)[..., :3])
    np.testing.assert_array_equal(figure_to_array(figure), (imread(changed)[..., :3] * 255).round().astype(np.uint8))
    assert len(draws) == 2

    # drawn by something else after a change (TensorBoard's add_figure draws an Agg canvas), it is not stale...
    figure.axes[0].set_title("changed again", color="red")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    assert not figure.stale
    # ...and the pixels of before are not handed out as its own
    np.testing.assert_array_equal(figure_to_array(figure), np.asarray(canvas.buffer_rgba())[..., :3])


def test_log_figure_to_csv_logger_writes_a_png(tmp_path: Path) -> None:
    logger = CSVLogger(save_dir=tmp_path, name="csv")
    figure = confusion_matrix_figure(np.eye(2), ["a", "b"])
    path = log_figure(logger, "val/confusion", figure, step=7, close=False)
    assert path == Path(logger.log_dir) / "figures" / "val_confusion_step7.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.axes, "close=False leaves the figure usable"
    assert log_figure(None, "val/confusion", figure, step=7) is None
    with pytest.raises(TypeError, match="matplotlib Figure"):
        log_figure(logger, "val/confusion", np.zeros((2, 2)), step=7)  # type: ignore[arg-type]
