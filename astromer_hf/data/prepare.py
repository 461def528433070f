"""Prepare a survey into a folder of memory-mapped Arrow splits, and summarise a prepared folder.

``prepare_dataset("synthetic", "data/synthetic", n_curves=10_000)`` runs the survey's builder and saves a
`datasets.DatasetDict` (``train`` / ``validation`` / ``test``) with ``save_to_disk``; ``datasets.load_from_disk``
memory-maps it back. The folder is assembled in a hidden staging folder beside its final place (``.<name>.XXXXXXXX``)
and renamed when complete. One process at a time prepares a given folder (a lock, ``.<name>-prepare.lock`` beside
it); staging folders that a killed run left behind are removed by the next run for the same folder.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shutil
import textwrap
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from datasets import DatasetDict, config, load_from_disk
from datasets.utils.py_utils import asdict
from filelock import FileLock, Timeout

from .builder import LightCurveBuilder, cleaning_report
from .splits import SPLIT_NAMES

SURVEY_BUILDERS = {
    "synthetic": "astromer_hf.data.surveys.synthetic:SyntheticLightCurves",
    "astromer_archive": "astromer_hf.data.surveys.astromer_archive:AstromerArchive",
    "macho": "astromer_hf.data.surveys.macho:MachoPhotometry",
    "ogle3": "astromer_hf.data.surveys.ogle3:Ogle3VariableStars",
    "atlas": "astromer_hf.data.surveys.atlas:AtlasVariableStars",
    "ztf": "astromer_hf.data.surveys.ztf:ZtfLightCurves",
    "gaia_dr3": "astromer_hf.data.surveys.gaia:GaiaEpochPhotometry",
}
LENGTH_BINS = (5, 50, 100, 200, 500, 1000, 2000, 5000)
logger = logging.getLogger(__name__)
#: What a staging folder holds; a hidden folder with anything else is not ours and is never removed.
_STAGING_ENTRIES = {"cache", "dataset", "replaced"}


class DatasetBusyError(BlockingIOError):
    """Another process is preparing the same output folder right now."""

CADENCE_BINS_DAYS = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def builder_class(survey: str) -> type[LightCurveBuilder]:
    """The builder class of a survey name (see :data:`SURVEY_BUILDERS`)."""
    if survey not in SURVEY_BUILDERS:
        raise ValueError(f"unknown survey {survey!r}; available: {sorted(SURVEY_BUILDERS)}")
    module, name = SURVEY_BUILDERS[survey].split(":")
    return getattr(importlib.import_module(module), name)


#: Fields every datasets BuilderConfig has, which are not survey settings.
_BASE_CONFIG_FIELDS = {"name", "version", "data_dir", "data_files", "description"}


def surveys_help() -> str:
    """The surveys, their configurations and their ``--set`` fields with defaults (for ``data prepare --help``)."""
    import dataclasses

    from .builder import LightCurveConfig

    def settings(config_class, skip) -> str:
        parts = []
        for field in dataclasses.fields(config_class):
            if field.name in skip:
                continue
            default = field.default
            if default is dataclasses.MISSING:
                default = field.default_factory() if field.default_factory is not dataclasses.MISSING else None
            parts.append(f"{field.name}={default!r}")
        return "\n".join("      " + line for line in textwrap.wrap(", ".join(parts), 100))

    shared = {field.name for field in dataclasses.fields(LightCurveConfig)}
    lines = ["every survey's settings (--set KEY=VALUE, default shown):",
             settings(LightCurveConfig, _BASE_CONFIG_FIELDS), "",
             "surveys (SURVEY), their configurations (--config) and their own settings:"]
    for survey in SURVEY_BUILDERS:
        builder = builder_class(survey)
        configs = ", ".join(
            f"{config.name}{' (default)' if config.name == builder.DEFAULT_CONFIG_NAME else ''}"
            for config in builder.BUILDER_CONFIGS
        )
        lines.append(f"  {survey}: --config {configs}")
        own = settings(builder.BUILDER_CONFIG_CLASS, shared)
        if own:
            lines.append(own)
    return "\n".join(lines)


def prepare_dataset(
    survey: str, out: str | Path, *, config: str | None = None, overwrite: bool = False, **config_kwargs
) -> DatasetDict:
    """Build ``survey`` (configuration ``config``, fields overridden by ``config_kwargs``) into ``out``.

    ``config_kwargs`` may be text (as from ``--set``): each is read by the type of its configuration field
    (:func:`~astromer_hf.data.builder.check_settings`).

    Returns:
        The prepared `DatasetDict`, memory-mapped from ``out``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        DatasetBusyError: another process is preparing ``out``.
        ValueError: unknown survey, unknown setting or a value of the wrong type (naming the key, the value and the
            type wanted); ``SurveyDataError`` (a ``ValueError``) for a source file that cannot be read.
        astromer_hf.data.download.DownloadError: a download failed (naming the survey and the URL).
    """
    out = Path(out)
    cls = builder_class(survey)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _preparing(out):
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            builder = cls(config_name=config, cache_dir=str(staging / "cache"), **config_kwargs)
            builder.download_and_prepare()
            _move_to_disk(builder.as_dataset(), staging / "dataset")
            report = cleaning_report(builder.info)
            (staging / "dataset" / "cleaning_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
            if out.exists():  # swap, so the old folder survives any failure before the new one is in place
                out.rename(staging / "replaced")
            (staging / "dataset").rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_from_disk(str(out))


@contextmanager
def _preparing(out: Path) -> Iterator[None]:
    """Hold the lock of ``out`` (or raise :class:`DatasetBusyError`), after removing stale staging folders.

    The lock is an OS file lock: a killed process releases it, so a stale lock file never blocks a later run.
    """
    lock_path = out.parent / f".{out.name}-prepare.lock"
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DatasetBusyError(
            f"{out} is being prepared by another process right now (it holds {lock_path}); wait until it finishes, "
            "or prepare into another folder"
        ) from None
    try:
        _remove_stale_staging(out)
        yield
    finally:
        lock.release()


def _remove_stale_staging(out: Path) -> None:
    """Remove the staging folders of ``out`` left by runs that were killed (called under ``out``'s lock, so no live
    run owns one). A previous dataset that a killed run had moved aside while swapping is put back first."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}")
    for folder in sorted(out.parent.iterdir()):
        if not (pattern.fullmatch(folder.name) and folder.is_dir()):
            continue
        if not {entry.name for entry in folder.iterdir()} <= _STAGING_ENTRIES:
            continue  # not a staging folder of ours: leave it alone
        if (folder / "replaced").is_dir() and not out.exists():
            (folder / "replaced").rename(out)
            logger.warning("restored %s, which an interrupted preparation had moved to %s", out, folder)
        logger.warning("removing %s, left behind by an interrupted preparation of %s", folder, out)
        shutil.rmtree(folder, ignore_errors=True)


def _move_to_disk(splits: DatasetDict, path: Path) -> None:
    """``splits.save_to_disk(path)`` by moving the builder's Arrow files instead of copying them.

    Writes the layout ``save_to_disk`` writes (``dataset_dict.json``; per split ``data-*.arrow``, ``state.json``,
    ``dataset_info.json``), so ``datasets.load_from_disk`` reads it, but renames the builder's cache files into it:
    nothing is read back, so preparing a survey larger than memory neither copies it on disk nor pulls its
    memory-mapped pages into the process (a copy through the memory map made the resident size grow like the data).
    """
    path.mkdir(parents=True)
    (path / config.DATASETDICT_JSON_FILENAME).write_text(json.dumps({"splits": list(splits)}))
    for name, split in splits.items():
        if split._indices is not None:
            raise ValueError(f"split {name!r} has an indices mapping; only a builder's own splits can be moved")
        folder = path / name
        folder.mkdir()
        files = [Path(entry["filename"]) for entry in split.cache_files]
        targets = [f"data-{index:05d}-of-{len(files):05d}.arrow" for index in range(len(files))]
        for source, target in zip(files, targets):
            source.rename(folder / target)
        state = {key: split.__dict__[key] for key in _STATE_KEYS}
        state["_split"] = str(split.split) if split.split is not None else None
        state["_data_files"] = [{"filename": target} for target in targets]
        (folder / config.DATASET_STATE_JSON_FILENAME).write_text(json.dumps(state, indent=2, sort_keys=True))
        info = asdict(split.info)
        (folder / config.DATASET_INFO_FILENAME).write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2))


_STATE_KEYS = ("_fingerprint", "_format_columns", "_format_kwargs", "_format_type", "_output_all_columns")


def dataset_summary(path: str | Path, *, cadence_sample: int = 10_000) -> dict:
    """Counts per split and class, length and cadence histograms, and the cleaning report of a prepared folder.

    The cadence histogram (median time between consecutive observations of a curve) uses at most
    ``cadence_sample`` curves per split.
    """
    splits = load_from_disk(str(path))
    summary: dict = {"splits": {}, "cleaning_report": cleaning_report(next(iter(splits.values())).info)}
    for name, split in splits.items():
        names = split.features["label"].names
        labels = np.array([-1 if x is None else x for x in split["label"]], dtype=np.int64)
        lengths = np.asarray(split["n_obs"])
        sample = split.select(range(min(len(split), cadence_sample)))
        gaps = [float(np.median(np.diff(t))) for t in sample["time"] if len(t) > 1]
        summary["splits"][name] = {
            "curves": len(split),
            "classes": {n: int((labels == i).sum()) for i, n in enumerate(names)} | {"unlabelled": int((labels < 0).sum())},
            "length_histogram": _histogram(lengths, LENGTH_BINS),
            "cadence_histogram_days": _histogram(np.asarray(gaps), CADENCE_BINS_DAYS),
        }
    return summary


def _histogram(values: np.ndarray, edges: tuple[float, ...]) -> dict[str, int]:
    """Counts in ``[edges[i], edges[i+1])`` plus an open last bin, keyed by readable ranges."""
    bins = list(edges) + [np.inf]
    counts, _ = np.histogram(values, bins=bins)
    return {f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}": int(c) for lo, hi, c in zip(bins, bins[1:], counts)}


def format_summary(summary: dict) -> str:
    """Readable text of :func:`dataset_summary`."""
    lines = []
    for name, split in summary["splits"].items():
        lines.append(f"{name}: {split['curves']} curves")
        classes = ", ".join(f"{k} {v}" for k, v in split["classes"].items() if v)
        lines.append(f"  classes: {classes}")
        lines.append("  observations per curve: " + ", ".join(f"{k}: {v}" for k, v in split["length_histogram"].items()))
        lines.append(
            "  median days between observations: "
            + ", ".join(f"{k}: {v}" for k, v in split["cadence_histogram_days"].items())
        )
    lines.extend(format_cleaning_report(summary["cleaning_report"]))
    return "\n".join(lines)


#: Rows of the cleaning table: (counter, label).
CLEANING_ROWS = (
    ("curves_in", "curves in"),
    ("curves_out", "curves kept"),
    ("observations_in", "observations in"),
    ("observations_out", "observations kept"),
    ("nonfinite_rows", "rows with NaN/inf or |value| >= 1e15"),
    ("bad_error_rows", "rows with error outside (0, max_error)"),
    ("duplicate_time_rows", "rows repeating a time (last kept)"),
    ("resorted_curves", "curves re-sorted by time"),
    ("short_curves", "curves too short after cleaning"),
)


def format_cleaning_report(report: dict[str, dict]) -> list[str]:
    """The per-split cleaning report as a table: one row per rule, one column per split."""
    if not report:
        return ["cleaning report: none recorded"]
    splits = [name for name in SPLIT_NAMES if name in report] + [name for name in report if name not in SPLIT_NAMES]
    width = max(len(label) for _, label in CLEANING_ROWS)
    lines = ["cleaning:", "  " + " " * width + "".join(f"{name:>12}" for name in splits)]
    for key, label in CLEANING_ROWS:
        lines.append(f"  {label:<{width}}" + "".join(f"{report[name].get(key, 0):>12,}" for name in splits))
    return lines
