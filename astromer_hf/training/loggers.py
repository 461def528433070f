"""Experiment loggers for the training recipes, and :func:`log_figure` for any Lightning logger.

:class:`AstromerWandbLogger`
    Lightning's :class:`~lightning.pytorch.loggers.WandbLogger` made safe for unattended runs. ``wandb.init`` asks
    for an API key on a terminal when none is configured (and waits for ever), and spends about 100 s retrying
    when a key exists but the W&B host cannot be reached. This logger decides between online and offline *before*
    ``wandb.init`` is called (credentials present and the API host accepting a TCP connection within
    ``online_timeout`` seconds), so a run never prompts and never stalls; offline runs print the ``wandb sync``
    command that uploads them later. It also finishes the run when Lightning finalizes the logger (the stock logger
    leaves it open) and logs ``save_pretrained`` folders as model artifacts.
:class:`TrackioLogger`
    A small Lightning logger for `trackio <https://github.com/gradio-app/trackio>`_, Hugging Face's local-first
    tracker (``pip install trackio``), storing its SQLite database in a directory of your choice.
:func:`log_figure`
    Sends a matplotlib figure to W&B (``wandb.Image``), TensorBoard (``add_figure``), trackio (``trackio.Image``)
    or, for any other logger, writes a PNG under the logger's directory.
"""

from __future__ import annotations

import configparser
import inspect
import json
import math
import netrc
import os
import re
import shlex
import shutil
import socket
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.logger import _add_prefix, _convert_params, _sanitize_callable_params
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from matplotlib.figure import Figure

from .figures import figure_to_array

__all__ = [
    "AstromerWandbLogger",
    "TrackioLogger",
    "log_figure",
    "resolve_wandb_mode",
    "wandb_base_url",
    "wandb_credentials_available",
]

WandbMode = Literal["auto", "online", "offline", "disabled"]

#: W&B's API address when nothing else is configured (``wandb`` 0.31 itself defaults to the CoreWeave Forge
#: address, read from the installed package when possible).
DEFAULT_WANDB_BASE_URL = "https://api.wandb.ai"

#: Files W&B writes into a run's ``files`` directory itself; saving a file of the same name replaces W&B's own.
WANDB_RESERVED_FILES = frozenset(
    {"config.yaml", "wandb-summary.json", "wandb-metadata.json", "requirements.txt", "output.log", "diff.patch"}
)

_WANDB_MODE_ALIASES = {
    "online": "online",
    "run": "online",
    "shared": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
}
_TRUE_STRINGS = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------------------------------
# W&B mode resolution (reads the environment and W&B's files; never calls wandb.init or the network)
# --------------------------------------------------------------------------------------------------------------------


def _wandb_settings_file(environ: Mapping[str, str]) -> Path:
    config_dir = environ.get("WANDB_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".config", "wandb")
    return Path(config_dir) / "settings"


def _wandb_default_base_url() -> str:
    try:
        from wandb.sdk.lib.urls import DEFAULT_BASE_URL
    except ImportError:
        return DEFAULT_WANDB_BASE_URL
    return str(DEFAULT_BASE_URL)


def _credential_hosts(base_url: str) -> list[str]:
    """Host names whose netrc entry wandb accepts for ``base_url`` (a Forge address also takes its W&B host's)."""
    hosts = [urlsplit(base_url).hostname or ""]
    try:
        from wandb.sdk.lib.urls import forge_upstream_url
    except ImportError:
        return hosts
    upstream = urlsplit(forge_upstream_url(base_url)).hostname
    return hosts + ([upstream] if upstream and upstream not in hosts else [])


def wandb_base_url(environ: Mapping[str, str] | None = None) -> str:
    """The W&B API URL a run would talk to: ``WANDB_BASE_URL``, else the ``base_url`` saved by
    ``wandb login --host`` in W&B's settings file, else wandb's default (``https://api.forge.coreweave.com`` in
    wandb 0.31)."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_BASE_URL"):
        return environ["WANDB_BASE_URL"].rstrip("/")
    parser = configparser.ConfigParser()
    try:
        parser.read(_wandb_settings_file(environ))
        saved = parser.get("default", "base_url", fallback="")
    except (configparser.Error, OSError, UnicodeDecodeError):
        saved = ""
    return (saved or _wandb_default_base_url()).rstrip("/")


def _netrc_path(environ: Mapping[str, str]) -> Path | None:
    if environ.get("NETRC"):
        return Path(environ["NETRC"]).expanduser()
    home = Path(os.path.expanduser("~"))
    for candidate in (home / ".netrc", home / "_netrc"):
        if candidate.is_file():
            return candidate
    return None


def wandb_credentials_available(base_url: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``wandb.init`` would find credentials without asking: ``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``,
    or a netrc entry (``NETRC``, else ``~/.netrc``) with a password for the API host of ``base_url``."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY", "").strip() or environ.get("WANDB_IDENTITY_TOKEN_FILE", "").strip():
        return True
    path = _netrc_path(environ)
    if path is None:
        return False
    try:
        entries = netrc.netrc(os.fspath(path))
    except (OSError, netrc.NetrcParseError, UnicodeDecodeError):
        return False
    for host in _credential_hosts(base_url or wandb_base_url(environ)):
        entry = entries.authenticators(host) if host else None
        if entry and entry[2]:
            return True
    return False


def _probe_address(base_url: str) -> tuple[str, int] | None:
    """``(host, port)`` to connect to for ``base_url``: the proxy's when one is configured for it."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    proxy = getproxies().get(parts.scheme or "https")
    if proxy and not proxy_bypass(parts.hostname):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            address = (proxy_parts.hostname, proxy_parts.port or 8080)
    return address


def _tcp_reachable(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds, name resolution included (done in a
    daemon thread, since ``getaddrinfo`` itself has no timeout)."""
    outcome: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except (OSError, ValueError):
            outcome.append(False)

    worker = threading.Thread(target=attempt, name="astromer-wandb-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def resolve_wandb_mode(
    mode: WandbMode = "auto", online_timeout: float = 3.0, environ: Mapping[str, str] | None = None
) -> tuple[Literal["online", "offline", "disabled"], str]:
    """Decide how a W&B run should start, without calling ``wandb`` (so without any prompt or network wait).

    An explicit ``mode`` wins; with ``"auto"``, ``WANDB_MODE`` (``online``/``offline``/``disabled`` and W&B's
    aliases ``run``/``dryrun``) or a true ``WANDB_DISABLED`` decide; otherwise the run is online only when
    credentials are present (:func:`wandb_credentials_available`) and the API host (:func:`wandb_base_url`, or the
    proxy configured for it) accepts a TCP connection within ``online_timeout`` seconds.

    Returns:
        ``(mode, reason)`` with ``mode`` one of ``"online"``, ``"offline"``, ``"disabled"`` and a short reason.

    Raises:
        ValueError: on an unknown ``mode`` or ``WANDB_MODE``, or online requested without credentials (``wandb.init``
            would then prompt for a key).
    """
    environ = os.environ if environ is None else environ
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"mode must be 'auto', 'online', 'offline' or 'disabled', got {mode!r}")
    source = f"mode={mode!r}"
    if mode == "auto":
        env_mode = environ.get("WANDB_MODE", "").strip().lower()
        if env_mode:
            if env_mode not in _WANDB_MODE_ALIASES:
                raise ValueError(
                    f"WANDB_MODE={env_mode!r} is not a W&B mode; use one of {sorted(_WANDB_MODE_ALIASES)}"
                )
            mode, source = _WANDB_MODE_ALIASES[env_mode], f"WANDB_MODE={env_mode}"  # type: ignore[assignment]
        elif environ.get("WANDB_DISABLED", "").strip().lower() in _TRUE_STRINGS:
            return "disabled", "WANDB_DISABLED is set"
    base_url = wandb_base_url(environ)
    if mode == "online":
        if not wandb_credentials_available(base_url, environ):
            raise ValueError(
                f"W&B online mode ({source}) needs credentials for {base_url}, and wandb.init would otherwise wait "
                "for a key typed on the terminal: set WANDB_API_KEY or run `wandb login`, or use mode='auto' or "
                "'offline'."
            )
        return "online", source
    if mode in ("offline", "disabled"):
        return mode, source  # type: ignore[return-value]

    if not wandb_credentials_available(base_url, environ):
        host = urlsplit(base_url).hostname or base_url
        return "offline", f"no W&B credentials for {host}: WANDB_API_KEY unset and no netrc entry"
    if not math.isfinite(online_timeout) or online_timeout <= 0:
        return "offline", f"online_timeout={online_timeout} allows no connection attempt"
    address = _probe_address(base_url)
    if address is None:
        return "offline", f"cannot parse the W&B URL {base_url!r}"
    if not _tcp_reachable(*address, timeout=online_timeout):
        return "offline", f"{address[0]}:{address[1]} not reachable within {online_timeout:g} s"
    return "online", f"credentials found and {address[0]}:{address[1]} reachable"


def _plain_params(params: Any) -> dict[str, Any]:
    """Hyperparameters as a plain dict: accepts dicts, argparse and jsonargparse namespaces."""
    if hasattr(params, "as_dict") and callable(params.as_dict):  # jsonargparse.Namespace (LightningCLI configs)
        params = params.as_dict()
    return _sanitize_callable_params(_convert_params(params))


# --------------------------------------------------------------------------------------------------------------------
# W&B
# --------------------------------------------------------------------------------------------------------------------


class AstromerWandbLogger(WandbLogger):
    """A :class:`~lightning.pytorch.loggers.WandbLogger` that never prompts or hangs, finishes its run when
    Lightning finalizes it, and logs ``save_pretrained`` folders as model artifacts.

    The W&B mode is decided by :func:`resolve_wandb_mode` when the run starts (on rank zero only, before
    ``wandb.init``): with ``mode="auto"`` the run is online only when credentials are configured and the API host
    answers within ``online_timeout`` seconds, and offline otherwise; an offline run prints one line with the
    ``wandb sync`` command that uploads it later. An ``auto`` run whose online start fails anyway (for instance a
    rejected key) falls back to offline with a warning.

    With ``finish_on_finalize`` (the default) the run is finished every time Lightning finalizes the logger, that is
    at the end of each ``fit``/``validate``/``test``/``predict``: the run's files are complete on disk and
    ``wandb sync`` can upload them. Logging again afterwards (``trainer.test`` after ``trainer.fit``) resumes the
    same run id; offline, that resumed part is a second run directory with the same id.

    Args:
        name: display name of the run.
        save_dir: directory under which ``wandb/`` (with the run directories) is created.
        version: id of the run, to resume one.
        project: W&B project.
        mode: ``"auto"``, ``"online"``, ``"offline"`` or ``"disabled"``.
        online_timeout: seconds allowed to the TCP check of the W&B host in ``auto`` mode.
        finish_on_finalize: finish the run in :meth:`finalize`.
        offline: Lightning's flag; ``True`` is the same as ``mode="offline"``.
        log_model, prefix, checkpoint_name: as in :class:`~lightning.pytorch.loggers.WandbLogger` (``log_model``
            also works offline: the artifacts are uploaded by ``wandb sync``).
        **kwargs: passed to ``wandb.init`` (``entity``, ``group``, ``tags``, ``settings``, ...).
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike = "outputs",
        version: str | None = None,
        project: str = "astromer_hf",
        mode: WandbMode = "auto",
        online_timeout: float = 3.0,
        finish_on_finalize: bool = True,
        offline: bool = False,
        log_model: Literal["all"] | bool = False,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in ("auto", "online", "offline", "disabled"):
            raise ValueError(f"mode must be 'auto', 'online', 'offline' or 'disabled', got {mode!r}")
        if online_timeout < 0:
            raise ValueError(f"online_timeout must be >= 0 seconds, got {online_timeout}")
        self._user_settings = kwargs.pop("settings", None)
        # LightningCLI passes every wandb.init keyword, unset ones as None: keep Lightning's own defaults for those
        # (``resume="allow"`` in particular, which lets a finished run be resumed by a later trainer.test)
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        super().__init__(
            name=name,
            save_dir=os.fspath(save_dir),
            version=version,
            offline=False,  # Lightning would set WANDB_MODE in os.environ; the mode is passed to wandb.init instead
            project=project,
            log_model=log_model,
            prefix=prefix,
            checkpoint_name=checkpoint_name,
            **kwargs,
        )
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)  # deprecated in wandb; passing None only prints a warning
        self._requested_mode: WandbMode = "offline" if offline else mode
        self._online_timeout = float(online_timeout)
        self._finish_on_finalize = finish_on_finalize
        self._resolved: tuple[Literal["online", "offline", "disabled"], str] | None = None
        if self._requested_mode == "online":
            self._resolved = resolve_wandb_mode("online")  # fail now, not in the middle of Trainer.fit
        self._announced_dirs: set[str] = set()
        self._last_run_dir: Path | None = None

    # -- mode ---------------------------------------------------------------------------------------------------

    @property
    def requested_mode(self) -> WandbMode:
        """The mode asked for in the constructor."""
        return self._requested_mode

    @property
    def mode(self) -> Literal["online", "offline", "disabled"]:
        """The mode the run starts (or started) in; resolved on first access, before any ``wandb.init``."""
        if self._resolved is None:
            self._resolved = resolve_wandb_mode(self._requested_mode, self._online_timeout)
        return self._resolved[0]

    @property
    def mode_reason(self) -> str:
        """Why :attr:`mode` was chosen."""
        _ = self.mode
        assert self._resolved is not None
        return self._resolved[1]

    @property
    def run_dir(self) -> Path | None:
        """The local directory (``.../wandb/offline-run-*`` or ``run-*``) of the current run, or of the last one
        once finished; ``None`` before any run started (or in disabled mode)."""
        if self._resolved is not None and self._resolved[0] == "disabled":
            return None  # a disabled run reports a directory that is never written
        sync_dir = getattr(getattr(self._experiment, "settings", None), "sync_dir", None)
        return Path(sync_dir) if sync_dir else self._last_run_dir

    def _settings_for(self, mode: str) -> Any:
        """W&B settings: the user's (``settings=`` keyword), with a bounded login so that nothing can wait on stdin."""
        import wandb

        user = self._user_settings
        if isinstance(user, wandb.Settings):
            settings = user.model_copy(deep=True)
        else:
            settings = wandb.Settings(**dict(user or {}))
        if "base_url" not in settings.model_fields_set:
            # wandb reads WANDB_BASE_URL once per process; pass the address whose reachability was checked
            settings.base_url = wandb_base_url()
        if settings.login_timeout is None:
            settings.login_timeout = max(self._online_timeout, 1.0)
        if mode == "online" and self._requested_mode == "auto" and "init_timeout" not in settings.model_fields_set:
            settings.init_timeout = 30.0
        return settings

    # -- run lifecycle -------------------------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``wandb`` run, started on first access in :attr:`mode` (rank zero only)."""
        if self._experiment is None:
            self._start_run()
        return self._experiment

    def _start_run(self) -> None:
        mode = self.mode
        if self._save_dir:
            Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        self._wandb_init["mode"] = mode
        self._wandb_init["settings"] = self._settings_for(mode)
        try:
            WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        except Exception as error:
            if mode != "online" or self._requested_mode != "auto":
                raise
            rank_zero_warn(f"W&B online start failed ({type(error).__name__}: {error}); logging offline instead.")
            self._resolved = ("offline", f"online start failed: {type(error).__name__}")
            self._wandb_init["mode"] = "offline"
            self._wandb_init["settings"] = self._settings_for("offline")
            WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        self._announce_offline()

    def _announce_offline(self) -> None:
        run_dir = self.run_dir
        if self.mode != "offline" or run_dir is None or str(run_dir) in self._announced_dirs:
            return
        self._announced_dirs.add(str(run_dir))
        print(
            f"W&B is offline ({self.mode_reason}): the run is saved in {run_dir}; "
            f"upload it later with: wandb sync {shlex.quote(str(run_dir))}",
            file=sys.stderr,
            flush=True,
        )

    @rank_zero_only
    def finish(self, exit_code: int = 0) -> None:
        """Finish the run (flushing its files to disk) if one is running; otherwise do nothing.

        The logger remembers the run id: logging after this resumes the same run.
        """
        run = self._experiment
        if run is None:
            return
        run_id = getattr(run, "id", None)
        self._last_run_dir = self.run_dir
        run.finish(exit_code=exit_code)
        self._experiment = None
        if run_id:
            self._id = run_id
            self._wandb_init["id"] = run_id

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log pending model checkpoints (on success, as Lightning does), then finish the run; idempotent."""
        super().finalize(status)
        if self._finish_on_finalize:
            self.finish(exit_code=1 if status == "failed" else 0)

    # -- logging -------------------------------------------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Record hyperparameters (a dict, an argparse or jsonargparse namespace, e.g. a LightningCLI config) in the
        run's config. Nothing is written to the run's ``config.yaml``, which belongs to W&B."""
        super().log_hyperparams(_plain_params(params))

    @rank_zero_only
    def log_pretrained_folder(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        aliases: Iterable[str] = ("best",),
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Log a ``save_pretrained`` folder as a W&B artifact of type ``"model"`` (offline too: ``wandb sync``
        uploads it with the run).

        Args:
            path: the folder.
            name: artifact name; defaults to ``model-<run id>``.
            aliases: aliases of this version (W&B adds ``latest``).
            metadata: JSON-serialisable metadata; the folder's ``config.json`` ``model_type`` is added when present.

        Returns:
            The logged ``wandb.Artifact``.

        Raises:
            FileNotFoundError: if ``path`` is not a directory. ValueError: if it is empty.
        """
        import wandb

        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"log_pretrained_folder: {folder} is not a directory")
        if not any(folder.iterdir()):
            raise ValueError(f"log_pretrained_folder: {folder} is empty")
        run = self.experiment
        info: dict[str, Any] = {"format": "save_pretrained", "source": str(folder.resolve())}
        try:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type:
            info["model_type"] = model_type
        info.update(metadata or {})
        artifact = wandb.Artifact(name=name or f"model-{run.id}", type="model", metadata=info)
        artifact.add_dir(str(folder))
        run.log_artifact(artifact, aliases=list(aliases))
        return artifact

    @rank_zero_only
    def save_file(self, path: str | os.PathLike, name: str | None = None) -> Path:
        """Copy a file into the run's files (uploaded with the run) under ``name`` (default: its own name).

        Raises:
            ValueError: if the name is one W&B writes itself (``config.yaml``, ``wandb-summary.json``, ...):
                saving it would replace W&B's file. Record configurations with :meth:`log_hyperparams` instead.
        """
        source = Path(path)
        target_name = name or source.name
        if Path(target_name).name in WANDB_RESERVED_FILES:
            raise ValueError(
                f"{target_name!r} would overwrite the file W&B keeps under that name in the run; pick another name "
                "(configurations belong in log_hyperparams)."
            )
        run = self.experiment
        target = Path(run.dir) / target_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        run.save(str(target), base_path=run.dir, policy="now")
        return target


# --------------------------------------------------------------------------------------------------------------------
# trackio
# --------------------------------------------------------------------------------------------------------------------

_TRACKIO_PATH_CONSTANTS = {"TRACKIO_DIR": "", "MEDIA_DIR": "media", "ARTIFACTS_DIR": "artifacts"}


def _import_trackio() -> Any:
    try:
        import trackio
    except ImportError as error:
        raise ModuleNotFoundError(
            "TrackioLogger needs the `trackio` package: pip install trackio (or pip install 'astromer_hf[dev]')"
        ) from error
    return trackio


def _point_trackio_at(directory: Path) -> None:
    """Make the imported trackio store its data in ``directory``.

    trackio reads ``TRACKIO_DIR`` once, when it is imported, into module constants that its submodules copy; the
    constants of every loaded trackio module are re-pointed (modules imported later copy the new values).
    """
    import trackio.utils as trackio_utils

    current = Path(trackio_utils.TRACKIO_DIR)
    if current == directory:
        return
    replacements = {
        str(current / suffix if suffix else current): directory / suffix if suffix else directory
        for suffix in _TRACKIO_PATH_CONSTANTS.values()
    }
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "trackio" or module_name.startswith("trackio.")):
            continue
        for constant in _TRACKIO_PATH_CONSTANTS:
            value = getattr(module, constant, None)
            if isinstance(value, Path) and str(value) in replacements:
                setattr(module, constant, replacements[str(value)])
    if Path(trackio_utils.TRACKIO_DIR) != directory:
        raise RuntimeError(f"could not point trackio at {directory}; set TRACKIO_DIR before importing trackio")


class TrackioLogger(Logger):
    """Log metrics, hyperparameters and images to `trackio <https://github.com/gradio-app/trackio>`_.

    trackio keeps one SQLite database per project (``<trackio_dir>/<project>.db``) and images under
    ``<trackio_dir>/media``; browse them with ``TRACKIO_DIR=<trackio_dir> trackio show --project <project>``.
    Only one trackio run is active per process: starting a second logger's run finishes the first.

    Args:
        project: trackio project (Lightning's ``name`` of this logger).
        name: run name (Lightning's ``version``); trackio picks one when ``None``.
        save_dir: root directory Lightning uses for this logger (checkpoints go to
            ``<save_dir>/<project>/<run name>/checkpoints``).
        trackio_dir: where trackio stores its data; defaults to ``TRACKIO_DIR`` or trackio's own default
            (``$HF_HOME/trackio``), which ``trackio show`` reads without further setting.
        group: optional run group.
        config: initial run configuration (hyperparameters logged later are added to it).
        prefix: prepended to metric names (joined with ``-``, as Lightning's loggers do).
        auto_log_system: let trackio sample CPU/GPU usage in a background thread.
        **init_kwargs: passed to ``trackio.init``.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        project: str = "astromer_hf",
        name: str | None = None,
        save_dir: str | os.PathLike = "outputs",
        trackio_dir: str | os.PathLike | None = None,
        group: str | None = None,
        config: Mapping[str, Any] | None = None,
        prefix: str = "",
        auto_log_system: bool = False,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if not project:
            raise ValueError("project must be a non-empty string")
        self._project = project
        self._run_name = name
        self._save_dir = os.fspath(save_dir)
        self._trackio_dir = Path(trackio_dir).expanduser().resolve() if trackio_dir is not None else None
        self._group = group
        self._config: dict[str, Any] = dict(config or {})
        self._prefix = prefix
        self._auto_log_system = auto_log_system
        self._init_kwargs = dict(init_kwargs)
        self._run: Any = None

    @property
    def name(self) -> str:
        """The trackio project."""
        return self._project

    @property
    def version(self) -> str | None:
        """The trackio run name (known once the run has started when none was given)."""
        return self._run_name

    @property
    def save_dir(self) -> str:
        """Root directory of this logger's outputs (Lightning puts checkpoints under it)."""
        return self._save_dir

    @property
    def log_dir(self) -> str:
        """``<save_dir>/<project>/<run name>``."""
        parts = [self._save_dir, self._project] + ([self._run_name] if self._run_name else [])
        return os.path.join(*parts)

    @property
    def trackio_dir(self) -> Path:
        """Where trackio stores (or will store) this run's data."""
        if self._trackio_dir is not None:
            return self._trackio_dir
        if "trackio.utils" in sys.modules:
            return Path(sys.modules["trackio.utils"].TRACKIO_DIR)
        if os.environ.get("TRACKIO_DIR"):
            return Path(os.environ["TRACKIO_DIR"])
        from huggingface_hub.constants import HF_HOME

        return Path(HF_HOME) / "trackio"

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``trackio.Run``, started on first access (rank zero only)."""
        if self._run is None:
            trackio = _import_trackio()
            if self._trackio_dir is not None:
                self._trackio_dir.mkdir(parents=True, exist_ok=True)
                _point_trackio_at(self._trackio_dir)
            accepted = inspect.signature(trackio.init).parameters
            options = {
                key: value
                for key, value in {
                    "embed": False,
                    "auto_log_cpu": self._auto_log_system,
                    "auto_log_gpu": self._auto_log_system,
                    "resume": "allow" if self._run_name else "never",
                }.items()
                if key in accepted
            }
            options.update(self._init_kwargs)
            self._run = trackio.init(
                project=self._project, name=self._run_name, group=self._group, config=dict(self._config), **options
            )
            self._run_name = self._run.name
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Add hyperparameters to the run configuration (stored with the next logged metrics)."""
        values = _plain_params(params)
        self._config.update(values)
        if self._run is not None:
            self._run.config.update(values)
            if hasattr(self._run, "_config_logged"):
                self._run._config_logged = False  # trackio writes the configuration with the next log entry

    @staticmethod
    def _as_loggable(value: Any) -> Any:
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return value.item()
        return value

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars (floats, 0-d tensors or arrays) and trackio media objects at ``step``."""
        values = _add_prefix(dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR)
        self.experiment.log({key: self._as_loggable(value) for key, value in values.items()}, step=step)

    @rank_zero_only
    def log_image(self, key: str, image: Any, step: int | None = None, caption: str | None = None) -> None:
        """Log an RGB ``uint8`` array ``[H, W, 3]``, a PIL image or an image file as ``trackio.Image``."""
        trackio = _import_trackio()
        self.log_metrics({key: trackio.Image(image, caption=caption)}, step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Finish the run, flushing what is queued to the database; idempotent. Logging afterwards resumes the run."""
        run, self._run = self._run, None
        if run is None:
            return
        trackio = _import_trackio()
        current_run = getattr(getattr(trackio, "context_vars", None), "current_run", None)
        if current_run is not None and current_run.get() is run:
            trackio.finish()  # also forgets the run, so trackio's exit hook does not finish it a second time
        else:
            run.finish()


# --------------------------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------------------------


def _figure_file_name(key: str, step: int | None) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "_").replace(os.sep, "_")).strip("._") or "figure"
    return f"{stem}_step{step}.png" if step is not None else f"{stem}.png"


def _logger_directory(logger: Logger) -> str | None:
    for attribute in ("log_dir", "save_dir"):
        try:
            directory = getattr(logger, attribute, None)
        except (AttributeError, TypeError):
            directory = None
        if directory:
            return os.fspath(directory)
    return None


@rank_zero_only
def _send_figure(logger: Logger, key: str, figure: Figure, step: int | None) -> Path | None:
    if isinstance(logger, DummyLogger):
        return None
    if isinstance(logger, WandbLogger):
        import wandb

        logger.log_metrics({key: wandb.Image(figure_to_array(figure))}, step=step)
        return None
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_figure(key, figure, global_step=step, close=False)
        return None
    if isinstance(logger, TrackioLogger):
        logger.log_image(key, figure_to_array(figure), step=step)
        return None
    directory = _logger_directory(logger)
    if directory is None:
        rank_zero_warn(f"log_figure: {type(logger).__name__} has no log_dir or save_dir; figure {key!r} not saved")
        return None
    path = Path(directory) / "figures" / _figure_file_name(key, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _close_figure(figure: Figure) -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)  # only matters for figures made with pyplot; harmless otherwise
    figure.clear()


def log_figure(
    logger: Logger | None, key: str, figure: Figure, step: int | None = None, *, close: bool = True
) -> Path | None:
    """Log a matplotlib figure with any Lightning logger (rank zero only).

    * :class:`~lightning.pytorch.loggers.WandbLogger` (and :class:`AstromerWandbLogger`): a ``wandb.Image`` under
      ``key``, at ``trainer/global_step = step``;
    * :class:`~lightning.pytorch.loggers.TensorBoardLogger`: ``add_figure(key, figure, step)``;
    * :class:`TrackioLogger`: a ``trackio.Image``;
    * any other logger (``CSVLogger``, ...): a PNG file
      ``<log_dir or save_dir>/figures/<key, "/" replaced by "_">_step<step>.png``;
    * ``None`` (no logger) or a ``DummyLogger``: nothing.

    Args:
        logger: the logger, or ``None``.
        key: metric name, e.g. ``"val/reconstruction"``.
        figure: the figure.
        step: the global step.
        close: close and clear the figure afterwards (pass ``False`` to send it to several loggers).

    Returns:
        The PNG's path for file-based logging, else ``None``.
    """
    if not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    try:
        return None if logger is None else _send_figure(logger, key, figure, step)
    finally:
        if close:
            _close_figure(figure)
