"""Offline W&B runs read back from disk: what a training run logged, without network or login (used by the tests).

wandb 0.31 no longer ships the Python reader of ``.wandb`` transaction logs (``wandb.sdk.internal.datastore`` is
gone); its command ``wandb leet inspect --json <run dir>`` prints the log's records, one JSON object per line, and
is what :func:`read_offline_run` uses (about half a second per run, no network, no login).

Typical use::

    run_dir = find_offline_runs(tmp_path / "outputs")[-1]
    run = read_offline_run(run_dir)
    assert run["finished"] and "train/rmse" in run["summary"]
    assert metric_values(run, "train/rmse")
    assert any(item["key"] == "val/reconstruction" for item in run["media"])
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["find_offline_runs", "inspect_records", "metric_values", "read_offline_run"]

_TRANSACTION_LOG_GLOB = "run-*.wandb"


def find_offline_runs(save_dir: str | Path) -> list[Path]:
    """Offline run directories (``offline-run-<time>-<id>`` holding a ``.wandb`` log) anywhere under ``save_dir``,
    oldest first (their names start with the start time). The ``latest-run`` link is not listed twice."""
    root = Path(save_dir)
    runs = {
        path.resolve()
        for path in root.rglob("offline-run-*")
        if path.is_dir() and not path.is_symlink() and any(path.glob(_TRANSACTION_LOG_GLOB))
    }
    return sorted(runs, key=lambda path: path.name)


def _transaction_log(run_dir: Path) -> Path:
    if run_dir.is_file():
        return run_dir
    logs = sorted(run_dir.glob(_TRANSACTION_LOG_GLOB))
    if len(logs) != 1:
        raise FileNotFoundError(f"expected one {_TRANSACTION_LOG_GLOB} file in {run_dir}, found {len(logs)}")
    return logs[0]


def inspect_records(run_dir: str | Path, timeout: float = 120.0) -> list[dict[str, Any]]:
    """All records of a run's ``.wandb`` log (``run_dir`` may also be the file itself), as printed by
    ``wandb leet inspect --json``: dicts with ``num``, ``type`` and a payload under the key named by ``type``."""
    log = _transaction_log(Path(run_dir))
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip().startswith("{")]


def _apply_update(target: dict[str, Any], payload: dict[str, Any]) -> None:
    target.update(payload.get("update") or {})
    for key in payload.get("remove") or {}:
        target.pop(key, None)


def _artifact(record: dict[str, Any]) -> dict[str, Any]:
    metadata = record.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata else {}
    contents = (record.get("manifest") or {}).get("contents") or []
    return {
        "name": record.get("name"),
        "type": record.get("type"),
        "aliases": list(record.get("aliases") or []),
        "metadata": metadata or {},
        "files": sorted(entry["path"] for entry in contents if "path" in entry),
        "digest": record.get("digest"),
    }


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """What a run directory holds, decoded from its transaction log and its ``files`` folder.

    Returns a dict with:

    * ``history``: the logged rows in order (dicts; nested values such as images are flattened to
      ``"<key>.<field>"``, e.g. ``"val/reconstruction._type": "image-file"``), with W&B's ``_step``/``_runtime``;
    * ``summary``: the final summary (same flattened keys), and ``config``: the run configuration (without
      W&B's ``_wandb`` entry);
    * ``media``: one dict per logged media value: ``key``, ``type`` (``"image-file"``, ...), ``path`` (relative to
      the ``files`` folder), ``step`` (W&B's ``_step``) and ``row`` (the history row);
    * ``files``: paths (POSIX, relative) of everything in the run's ``files`` folder, and ``saved_files``: the
      paths recorded in the log as saved;
    * ``artifacts``: dicts with ``name``, ``type``, ``aliases``, ``metadata``, ``files`` and ``digest``;
    * ``run``: ``id``, ``name``, ``project``; ``exit_code`` (or ``None``) and ``finished`` (an exit record is
      present); ``dir``: the run directory.
    """
    path = Path(run_dir)
    directory = path.parent if path.is_file() else path
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    config: dict[str, Any] = {}
    saved_files: list[str] = []
    artifacts: list[dict[str, Any]] = []
    run_info: dict[str, Any] = {}
    exit_code: int | None = None
    finished = False
    for record in inspect_records(path):
        kind = record.get("type")
        payload = record.get(kind) or {}
        if kind == "run":
            run_info = {
                "id": payload.get("run_id"),
                "name": payload.get("display_name"),
                "project": payload.get("project"),
            }
            _apply_update(config, payload.get("config") or {})
            _apply_update(summary, payload.get("summary") or {})
        elif kind == "config":
            _apply_update(config, payload)
        elif kind == "summary":
            _apply_update(summary, payload)
        elif kind == "history":
            history.append(dict(payload.get("item") or {}))
        elif kind == "files":
            saved_files.extend(entry["path"] for entry in payload.get("files") or [] if "path" in entry)
        elif kind == "artifact":
            artifacts.append(_artifact(payload))
        elif kind == "exit":
            finished, exit_code = True, int(payload.get("exit_code", 0))
    config.pop("_wandb", None)

    media = []
    for row in history:
        for name, value in row.items():
            if name.endswith("._type"):
                key = name[: -len("._type")]
                media.append({"key": key, "type": value, "path": row.get(f"{key}.path"), "step": row.get("_step"),
                              "row": row})
    files_dir = directory / "files"
    files = sorted(p.relative_to(files_dir).as_posix() for p in files_dir.rglob("*") if p.is_file()) \
        if files_dir.is_dir() else []
    return {
        "dir": directory,
        "run": run_info,
        "history": history,
        "summary": summary,
        "config": config,
        "media": media,
        "files": files,
        "saved_files": saved_files,
        "artifacts": artifacts,
        "exit_code": exit_code,
        "finished": finished,
    }


def metric_values(run: dict[str, Any], key: str) -> list[Any]:
    """The values ``key`` took in ``run["history"]``, in logging order."""
    return [row[key] for row in run["history"] if key in row]
