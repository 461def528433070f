"""Experiment loggers for the training recipes: :class:`AstromerWandbLogger` (Lightning's ``WandbLogger`` whose mode
is decided before ``wandb.init`` by :func:`resolve_wandb_mode`, so it never prompts or hangs), :class:`TrackioLogger`
(Hugging Face's local-first tracker), and :func:`log_figure` for any Lightning logger."""

from __future__ import annotations

import contextlib
import json
import netrc
import os
import re
import shlex
import socket
import sys
import threading
from argparse import Namespace
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import DummyLogger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from matplotlib.figure import Figure

from .figures import figure_to_array

__all__ = ["AstromerWandbLogger", "TrackioLogger", "log_figure", "resolve_wandb_mode"]

_MODES = ("auto", "online", "offline", "disabled")
_WANDB_MODES = {"online": "online", "run": "online", "shared": "online", "offline": "offline", "dryrun": "offline",
                "disabled": "disabled"}  # what WANDB_MODE may say


def wandb_mode_variable() -> str:
    """``WANDB_MODE`` stripped and lower-cased (``""`` when unset). ``ValueError`` when it is set but empty or is no
    W&B mode: ``wandb.init`` validates the variable itself and rejects it whatever mode it is given."""
    value = os.environ.get("WANDB_MODE")
    if value is None:
        return ""
    if not value.strip():
        raise ValueError(f"WANDB_MODE is set but empty, which W&B rejects in any mode; unset it (`unset WANDB_MODE`) "
                         f"or set it to one of {sorted(_WANDB_MODES)}")
    if value.strip().lower() not in _WANDB_MODES:
        raise ValueError(f"WANDB_MODE={value.strip().lower()!r} is not a W&B mode; use one of {sorted(_WANDB_MODES)}")
    return value.strip().lower()


def resolve_wandb_mode(mode: str = "auto", online_timeout: float = 3.0) -> tuple[str, str]:
    """``(mode, reason)``: how a W&B run should start (``"online"``, ``"offline"`` or ``"disabled"``), decided
    without ``wandb.init``. An explicit ``mode`` wins, then ``WANDB_MODE``; ``"auto"`` is online only when credentials
    are present (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, or a netrc entry for the W&B host:
    ``WANDB_BASE_URL``, else wandb's default) and the host (or its proxy) accepts a TCP connection within
    ``online_timeout`` seconds. ``"online"`` without credentials raises ``ValueError`` (wandb would prompt)."""
    import wandb

    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    source, env_mode = f"mode={mode!r}", wandb_mode_variable()
    if mode == "auto" and env_mode:
        mode, source = _WANDB_MODES[env_mode], f"WANDB_MODE={env_mode}"
    if mode in ("offline", "disabled"):
        return mode, source
    url = os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url
    try:  # wandb >= 0.31 also takes, for its default CoreWeave Forge host, the key saved for api.wandb.ai
        from wandb.sdk.lib.urls import forge_upstream_url
    except ImportError:
        forge_upstream_url = str
    hosts = {urlsplit(address).netloc for address in (url, forge_upstream_url(url))}  # as wandb writes netrc
    key = os.environ.get("WANDB_API_KEY", "").strip() or os.environ.get("WANDB_IDENTITY_TOKEN_FILE")
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        entries = netrc.netrc(os.environ.get("NETRC") or os.path.expanduser("~/.netrc"))
        key = key or any((entries.authenticators(host) or ("",))[-1] for host in hosts)
    if not key and mode == "online":
        raise ValueError(f"W&B online mode ({source}) needs credentials for {url}: set WANDB_API_KEY or run "
                         "`wandb login`, or use mode='auto' or 'offline'")
    if not key:
        return "offline", f"no W&B credentials for {urlsplit(url).netloc}: set WANDB_API_KEY or run `wandb login`"
    if mode == "online":
        return "online", source
    if not online_timeout > 0:
        return "offline", f"online_timeout={online_timeout} allows no connection attempt"
    target = urlsplit(url)
    if (proxy := getproxies().get(target.scheme)) and not proxy_bypass(target.hostname or ""):
        target = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    address = (target.hostname or "", target.port or (443 if target.scheme == "https" else 80))
    reached = threading.Event()

    def connect() -> None:  # in a thread: name resolution has no timeout of its own
        with contextlib.suppress(OSError, ValueError), socket.create_connection(address, timeout=online_timeout):
            reached.set()

    threading.Thread(target=connect, name="astromer-wandb-probe", daemon=True).start()
    if not reached.wait(online_timeout):
        return "offline", f"{address[0]}:{address[1]} not reachable within {online_timeout:g} s"
    return "online", f"credentials found and {address[0]}:{address[1]} reachable"


def _leave_anonymous_unset(logger: WandbLogger) -> WandbLogger:
    """Lightning's logger hands ``wandb.init`` ``anonymous=None`` when no ``anonymous`` is given, and wandb >= 0.31
    prints "The anonymous setting has no effect" for any value it is given, at every run: leave it out when unset."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous", False) is None:
        del init["anonymous"]
    return logger


class AstromerWandbLogger(WandbLogger):
    """Lightning's :class:`~lightning.pytorch.loggers.WandbLogger` whose ``mode`` (``"auto"``, ``"online"``,
    ``"offline"``, ``"disabled"``) is resolved by :func:`resolve_wandb_mode` on first use, before ``wandb.init``. An
    offline run prints the ``wandb sync`` command that uploads it later; an ``auto`` run whose online start fails (a
    rejected key) falls back to offline with a warning. :meth:`finalize` (end of ``fit``, ``test``...) finishes the
    run; logging afterwards resumes the same run id. Other arguments go to the stock logger and to ``wandb.init``."""

    def __init__(self, name: str | None = None, save_dir: str | os.PathLike = "outputs", version: str | None = None,
                 project: str = "astromer_hf", mode: Literal["auto", "online", "offline", "disabled"] = "auto",
                 online_timeout: float = 3.0, offline: bool = False, **kwargs: Any) -> None:
        import wandb

        self.requested_mode, self.online_timeout = "offline" if offline else mode, float(online_timeout)
        if self.requested_mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self._resolved = resolve_wandb_mode("online") if self.requested_mode == "online" else None  # fail early
        settings = kwargs.pop("settings", None) or {}  # a copy we set the mode in, for every wandb.init
        self._settings = settings.model_copy() if isinstance(settings, wandb.Settings) else wandb.Settings(**settings)
        # LightningCLI passes unset wandb.init keywords as None: leave those to the stock logger's defaults
        self._init_args = dict(name=name, save_dir=os.fspath(save_dir), project=project, settings=self._settings,
                               **{key: value for key, value in kwargs.items() if value is not None})
        super().__init__(version=version, **self._init_args)
        _leave_anonymous_unset(self)
        self._run: Any = None  # the live run: None before the first start and after each finish
        self._finished = False
        self.run_dir: Path | None = None  # local directory of the current (or last) run; None when disabled

    @property
    def mode(self) -> str:
        """``"online"``, ``"offline"`` or ``"disabled"``: how the run starts (or started)."""
        self._resolved = self._resolved or resolve_wandb_mode(self.requested_mode, self.online_timeout)
        return self._resolved[0]

    @property
    def mode_reason(self) -> str:
        """Why :attr:`mode` was chosen."""
        return self.mode and self._resolved[1]

    def _start(self) -> Any:
        self._settings.mode = self.mode
        if os.environ.get("WANDB_BASE_URL"):  # the host resolve_wandb_mode checked; wandb reads it once per process
            self._settings.base_url = os.environ["WANDB_BASE_URL"]
        Path(self._init_args["save_dir"]).mkdir(parents=True, exist_ok=True)
        if not self._finished:
            return super().experiment  # the stock logger's wandb.init and metric definitions
        # the stock logger holds on to a finished run: a new stock logger starts the same run id again
        return _leave_anonymous_unset(WandbLogger(version=self.version, **self._init_args)).experiment

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``wandb`` run, started on first access (rank zero only)."""
        if self._run is None:
            try:
                self._run = self._start()
            except Exception as error:
                if self.mode != "online" or self.requested_mode != "auto":
                    raise
                rank_zero_warn(f"W&B online start failed ({type(error).__name__}: {error}); logging offline instead.")
                self._resolved = ("offline", f"online start failed: {type(error).__name__}")
                self._run = self._start()
            self.run_dir = None if self.mode == "disabled" else Path(self._run.settings.sync_dir)
            if self.mode == "offline":
                print(f"W&B is offline ({self.mode_reason}): the run is saved in {self.run_dir}; upload it later "
                      f"with: wandb sync {shlex.quote(str(self.run_dir))}", file=sys.stderr, flush=True)
        return self._run

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log pending checkpoints (stock behaviour), then finish the run; idempotent."""
        super().finalize(status)
        if self._run is not None:
            self._run.finish(exit_code=1 if status == "failed" else 0)
            self._run, self._finished = None, True

    @rank_zero_only
    def log_pretrained_folder(self, path: str | os.PathLike, name: str | None = None,
                              aliases: Iterable[str] = ("best",), metadata: Mapping[str, Any] | None = None) -> Any:
        """Log a non-empty ``save_pretrained`` folder as a W&B artifact of type ``"model"`` (``model-<run id>`` unless
        ``name`` is given; offline too: ``wandb sync`` uploads it); the metadata gets the folder's ``model_type``."""
        import wandb

        folder = Path(path)
        if not folder.is_dir() or not any(folder.iterdir()):
            raise FileNotFoundError(f"log_pretrained_folder: {folder} is not a non-empty directory")
        info: dict[str, Any] = {"format": "save_pretrained", "source": str(folder.resolve())}
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info["model_type"] = json.loads((folder / "config.json").read_text())["model_type"]
        artifact = wandb.Artifact(name or f"model-{self.experiment.id}", "model", metadata={**info, **(metadata or {})})
        artifact.add_dir(str(folder))
        self.experiment.log_artifact(artifact, aliases=list(aliases))
        return artifact


def _import_trackio(directory: Path | None = None) -> Any:
    """trackio, storing its data in ``directory`` if given. trackio reads ``TRACKIO_DIR`` once, when first imported,
    and has no other way to choose its storage: the variable is set before that import; one directory per process."""
    if directory is not None and "trackio" not in sys.modules:
        os.environ["TRACKIO_DIR"] = str(directory)
    try:
        import trackio
        from trackio.utils import TRACKIO_DIR
    except ImportError as error:
        raise ModuleNotFoundError("TrackioLogger needs the `trackio` package: pip install trackio") from error
    if directory is not None and Path(TRACKIO_DIR).resolve() != directory:
        raise RuntimeError(f"trackio already stores its data in {TRACKIO_DIR} in this process (it reads TRACKIO_DIR "
                           f"once, when first imported): use trackio_dir={str(directory)!r} in another process")
    return trackio


class TrackioLogger(Logger):
    """Log metrics, hyperparameters and images to `trackio <https://github.com/gradio-app/trackio>`_: one SQLite
    database per project, ``<trackio_dir>/<project>.db`` (browse it with ``TRACKIO_DIR=<trackio_dir> trackio show``).
    ``project`` and ``name`` are Lightning's ``name`` and ``version``; ``trackio_dir`` defaults to ``TRACKIO_DIR``,
    else ``$HF_HOME/trackio``, one per process (see above); ``config`` and ``**init_kwargs`` (``group``,
    ``auto_log_gpu``...) go to ``trackio.init``. trackio stores the configuration with the run's first metrics:
    hyperparameters logged later are not stored. :meth:`finalize` finishes the run; logging afterwards resumes it."""

    def __init__(self, project: str = "astromer_hf", name: str | None = None, save_dir: str | os.PathLike = "outputs",
                 trackio_dir: str | os.PathLike | None = None, config: Mapping[str, Any] | None = None,
                 **init_kwargs: Any) -> None:
        super().__init__()
        if not project:
            raise ValueError("project must be a non-empty string")
        self._project, self._run_name, self._save_dir = project, name, os.fspath(save_dir)
        self._config = dict(config or {})
        self._trackio_dir = Path(trackio_dir).expanduser().resolve() if trackio_dir is not None else None
        self._init_kwargs = {"embed": False, "auto_log_cpu": False, "auto_log_gpu": False, **init_kwargs}
        self._run: Any = None

    @property
    def name(self) -> str:
        return self._project

    @property
    def version(self) -> str | None:
        return self._run_name

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        return os.path.join(self._save_dir, self._project, *([self._run_name] if self._run_name else []))

    @property
    def trackio_dir(self) -> Path:
        """Where trackio stores (or will store) this logger's data."""
        return self._trackio_dir or Path(_import_trackio().utils.TRACKIO_DIR)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``trackio.Run``, started on first access (rank zero only)."""
        if self._run is None:
            self._run = _import_trackio(self._trackio_dir).init(
                project=self._project, name=self._run_name, config=dict(self._config),
                resume="allow" if self._run_name else "never", **self._init_kwargs)
            self._run_name = self._run.name
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        self._config.update(values)
        if self._run is not None:
            self._run.config.update(values)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars (floats, 0-d tensors or arrays) and trackio media objects at ``step``."""
        self.experiment.log({key: value.item() if getattr(value, "ndim", None) == 0 else value
                             for key, value in metrics.items()}, step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Finish the run, writing what is queued to the database; idempotent."""
        run, self._run = self._run, None
        if run is not None and (trackio := _import_trackio()).context_vars.current_run.get() is run:
            trackio.finish()  # also clears trackio's current run (a later trackio.init finishes the previous one)


def _save_png(figure: Figure, path: Path) -> None:
    """``figure.savefig(path)`` as a PNG. With matplotlib's default ``savefig.*`` settings, where ``savefig`` would
    draw exactly what :func:`~astromer_hf.training.figures.figure_to_array` renders, the PNG is encoded from those
    pixels: drawn once (``savefig`` draws a constrained-layout figure twice, ~0.3-0.5 s a time on a CPU), and not
    at all when another logger of the same step has already rendered the figure."""
    import matplotlib
    from matplotlib.image import imsave

    settings = matplotlib.rcParams
    if (settings["savefig.dpi"] in ("figure", figure.dpi) and settings["savefig.bbox"] is None
            and settings["savefig.facecolor"] == "auto" and settings["savefig.edgecolor"] == "auto"
            and not settings["savefig.transparent"]):
        imsave(path, figure_to_array(figure), format="png", dpi=figure.dpi)
    else:
        figure.savefig(path, format="png")


def log_figure(logger: Logger | None, key: str, figure: Figure, step: int | None = None, *,
               close: bool = True) -> Path | None:
    """Log a matplotlib figure with any Lightning logger (rank zero only): W&B gets a ``wandb.Image`` under ``key``
    (at ``trainer/global_step = step``), TensorBoard ``add_figure``, :class:`TrackioLogger` a ``trackio.Image``, any
    other logger (``CSVLogger``...) a PNG ``<log_dir or save_dir>/figures/<key, "/" as "_">_step<step>.png`` whose
    path is returned; ``None`` or a ``DummyLogger`` nothing. ``close=False`` leaves the figure open for reuse."""
    if not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    try:
        if logger is None or isinstance(logger, DummyLogger) or rank_zero_only.rank != 0:
            return None
        if isinstance(logger, WandbLogger):
            import wandb

            logger.log_metrics({key: wandb.Image(figure_to_array(figure))}, step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, figure, global_step=step, close=False)
        elif isinstance(logger, TrackioLogger):
            _ = logger.experiment  # imports trackio into the logger's directory first
            logger.log_metrics({key: _import_trackio().Image(figure_to_array(figure))}, step=step)
        elif directory := getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None):
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "_")).strip("._") or "figure"
            path = Path(directory) / "figures" / (f"{stem}_step{step}.png" if step is not None else f"{stem}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_png(figure, path)
            return path
        else:
            rank_zero_warn(f"log_figure: {type(logger).__name__} has no log_dir or save_dir; {key!r} not saved")
        return None
    finally:
        if close:
            if (pyplot := sys.modules.get("matplotlib.pyplot")) is not None:
                pyplot.close(figure)  # only figures made with pyplot are registered there
            figure.clear()
