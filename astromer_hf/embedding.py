"""One call from light curves to Astromer embeddings: :func:`embed`.

``embed(curves, model)`` cleans the curves, cuts them into windows, runs the encoder batch by batch and pools each
curve's per-observation embeddings over all of its windows into one vector, returned in the order of the input:

>>> import astromer_hf
>>> result = astromer_hf.embed(curves, "astromer-base")       # curves: list of (N, 3) arrays [time, mag, err]
>>> result.vectors.shape                                       # (C, 256); NaN rows where cleaning dropped a curve
>>> result.kept, result.ids, result.report                     # which curves were embedded, their ids, the cleaning

It reads every container :func:`astromer_hf.lightcurves.as_lightcurves` reads (a list of ``(N, 3)`` arrays, a dict of
columns, a long DataFrame with an id column), astropy ``Table`` / ``TimeSeries`` in the same long layout, and
``datasets.Dataset`` / ``DatasetDict`` in the survey schema (one row per curve with ``time``, ``mag``, ``mag_err``
lists), which it reads a chunk of curves at a time. For inputs too large for one result in memory,
:func:`embed_to_parquet` writes the vectors chunk by chunk to one Parquet file or to shards, and
:func:`add_embeddings` adds an ``embedding`` column to a ``Dataset`` through ``Dataset.map``.

How the work is organised (no Python loop per observation or per window):

* cleaning, windowing and centring are the processor's (:mod:`astromer_hf.lightcurves`), on one flat array of all the
  observations of a chunk;
* windows are sorted by length and batched; for models whose attention mask removes padding
  (``attention_mask_style="key"``, Astromer 2) each batch is padded only to its longest window, so short curves pay
  no padding. Astromer 1's additive mask (``"additive_one"``) lets padding change the outputs
  (``docs/architecture.md``): a window must give what it gives padded to ``window_size``, as the released weights
  expect. By default (``pack_padding=True``) each window keeps one padded position standing for all of its
  ``window_size - L`` (they all carry one state; the encoder's ``key_multiplicity``), a batch is as wide as its
  longest window plus that one, and further filler has multiplicity 0: the outputs at the real positions are those
  of full padding up to float rounding, at the cost of ``L + 1`` positions instead of ``window_size``;
  ``pack_padding=False`` pads every window to ``window_size`` as the original did;
* pooling accumulates per-window sums into per-curve sums with ``index_add_`` / ``scatter_reduce_`` on the device;
  per-observation embeddings are written back to their rows with one fancy-indexing assignment per batch.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.mapped_files import MappedPageBudget
from .lightcurves import (
    ID_ALIASES,
    CleaningReport,
    RaggedCurves,
    WindowSlices,
    _find_by_alias,
    _resolve_columns,
    as_lightcurves,
    center_windows,
    select_clean_rows,
    validate_lightcurves,
    window_slices,
)

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "max", "gamma")
#: Curves read from a ``datasets.Dataset`` at a time (the memory of a chunk: its observations, windows and results).
DEFAULT_CHUNK_SIZE = 2048
#: ``progress=None`` shows a bar for inputs of at least this many curves.
PROGRESS_MIN_CURVES = 1000
#: Per-curve columns carried from a dataset into the result (besides the id), when the dataset has them.
DATASET_EXTRA_COLUMNS = ("band", "label")


# ----------------------------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class LightCurveEmbeddings:
    """Embeddings of C light curves, one row per input curve in input order.

    Attributes:
        vectors: float32 ``(C, D)`` pooled embeddings; a row of NaN where the cleaning dropped the curve.
        kept: bool ``(C,)``: False where the cleaning dropped the curve (too few valid observations).
        ids: the curve ids: the id column of a DataFrame / Table / Dataset (``object_id``, ``id`` ...), else
            ``0..C-1``.
        report: the :class:`~astromer_hf.lightcurves.CleaningReport` (``report.dropped_curves`` lists the positions
            of the dropped curves).
        observations: with ``return_observations=True``, one float32 ``(n_i, D)`` array per curve (None for a dropped
            curve): the last layer's per-observation embeddings. With the default tiling windows, row ``j`` is the
            embedding of the curve's input row ``j`` (``n_i`` is the input length; rows the cleaning removed, such as
            NaN or repeated times, are NaN). With ``legacy=True``, the original ``encode()`` rows: the rows of each
            window of the cleaned curve, window after window (``n_i = sum`` of its window lengths).
        pooling: ``"mean"``, ``"max"`` or ``"gamma"``.
        columns: other per-curve columns carried from the input (a Dataset's ``band`` and ``label``, a
            ``DatasetDict``'s ``split``), each a list of C values.
    """

    vectors: np.ndarray
    kept: np.ndarray
    ids: list
    report: CleaningReport
    observations: list[np.ndarray | None] | None = None
    pooling: str = "mean"
    columns: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def dim(self) -> int:
        """D, the embedding size."""
        return int(self.vectors.shape[1])

    def to_arrow(self):
        """A ``pyarrow.Table``: ``id``, ``kept``, ``embedding`` (list of float32, null for a dropped curve), the
        carried ``columns`` and, when computed, ``observations`` (a list of per-observation lists)."""
        pa = _pyarrow()
        data = {"id": _id_array(self.ids), "kept": pa.array(self.kept, type=pa.bool_())}
        for name, values in self.columns.items():
            data[name] = pa.array(values)
        data["embedding"] = _vector_array(self.vectors, self.kept)
        if self.observations is not None:
            data["observations"] = _observation_array(self.observations, self.dim)
        return pa.table(data)

    def to_pandas(self):
        """A DataFrame with one row per curve: ``id``, ``kept``, ``embedding`` (a float32 array, None for a dropped
        curve), the carried ``columns`` and ``observations`` (a ``(n_i, D)`` array) when computed."""
        import pandas as pd

        frame = pd.DataFrame({"id": list(self.ids), "kept": self.kept})
        for name, values in self.columns.items():
            frame[name] = list(values)
        frame["embedding"] = [row if keep else None for row, keep in zip(self.vectors, self.kept)]
        if self.observations is not None:
            frame["observations"] = list(self.observations)
        return frame

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_arrow` to one Parquet file; returns its path."""
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_arrow(), path)
        return path

    @classmethod
    def concatenate(cls, parts: Sequence[LightCurveEmbeddings]) -> LightCurveEmbeddings:
        """The results of consecutive chunks of one input, as one result."""
        if not parts:
            raise ValueError("nothing to concatenate")
        observations = None
        if parts[0].observations is not None:
            observations = [row for part in parts for row in part.observations]
        names = list(parts[0].columns)
        return cls(
            vectors=np.concatenate([part.vectors for part in parts]),
            kept=np.concatenate([part.kept for part in parts]),
            ids=[value for part in parts for value in part.ids],
            report=merge_reports([part.report for part in parts]),
            observations=observations,
            pooling=parts[0].pooling,
            columns={name: [value for part in parts for value in part.columns[name]] for name in names},
        )


def merge_reports(reports: Sequence[CleaningReport]) -> CleaningReport:
    """One report for consecutive chunks: counts added, dropped curve positions shifted to the whole input."""
    counts = {f.name: sum(getattr(r, f.name) for r in reports) for f in fields(CleaningReport)
              if f.name != "dropped_curves"}
    dropped, start = [], 0
    for report in reports:
        dropped.extend(start + index for index in report.dropped_curves)
        start += report.curves_in
    return CleaningReport(**counts, dropped_curves=tuple(dropped))


@dataclass(frozen=True)
class EmbeddingFiles:
    """What :func:`embed_to_parquet` wrote: the files, the number of curves and of kept curves, the cleaning report."""

    paths: list[Path]
    curves: int
    kept: int
    report: CleaningReport


# ----------------------------------------------------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------------------------------------------------
def embed(
    curves: Any,
    model: Any = "astromer-base",
    *,
    pooling: str = "mean",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    return_observations: bool = False,
    legacy: bool = False,
    processor: Any = None,
    progress: bool | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    pack_padding: bool = True,
) -> LightCurveEmbeddings:
    """Embed light curves with an Astromer encoder: one vector per curve, in input order.

    Args:
        curves: a list of ``(N, 3)`` arrays ``[time, mag, err]`` (or one such array); a dict of columns (``time``,
            ``mag``, ``err`` and their aliases); a long pandas DataFrame or astropy ``Table`` / ``TimeSeries`` with
            those columns and an optional id column (``object_id``, ``id``, ``oid``, ``newID``) grouping the rows into
            curves; or a ``datasets.Dataset`` / ``DatasetDict`` in the survey schema (one row per curve, list columns
            ``time``, ``mag``, ``mag_err``), read ``chunk_size`` curves at a time (a DatasetDict: split after split,
            with a ``split`` column in ``columns``); or the path of a file or folder, or a list of one-curve files,
            that :func:`read_lightcurves` reads (a prepared dataset, a CSV / Parquet table, a folder of one-curve text
            files ...).
        model: a release name (``"astromer-base"``, ``"astromer-2-macho"``; see :mod:`astromer_hf.releases`), a
            ``save_pretrained`` folder or a Hub id (its encoder is loaded; a classifier saved with skip pooling is
            loaded whole for ``pooling="gamma"``), or an Astromer model instance of any head (its encoder is used; it
            is moved to ``device`` and put in eval mode for the call, then put back).
        pooling: how a curve's per-observation embeddings (of all its windows) become one vector:
            ``"mean"``: the mean of the last layer's embeddings over every real observation of every window
            (observation-weighted; padding never counts); ``"max"``: their maximum; ``"gamma"``: the γ-weighted layer
            mix of Astromer 2's skip pooling, ``mean_l(softmax(γ)_l · z_l)`` over the L + 1 layer outputs (input
            embedding and every block), ``z_l`` the mean of layer ``l`` over the curve's observations: the formula of
            :class:`~astromer_hf.AstromerForLightCurveClassification`'s ``"skip"`` pooling. γ is a classifier's trained
            ``layer_weights`` when the model has them, else uniform (``softmax`` of ``1/(L+1)``).
        batch_size: windows per forward pass (on the CPU, with a key mask or ``pack_padding``, at most the encoder's
            inference slice: see the padding note below).
        device: where the encoder runs; None: CUDA when available, else the CPU.
        dtype: None (float32) or ``torch.bfloat16`` (``"bfloat16"``): the forward pass under autocast on the device.
        return_observations: also return the per-observation embeddings of the last layer, stitched back to each
            curve (see :class:`LightCurveEmbeddings`).
        legacy: reproduce the original ``encode()``: the original windows (``floor(L/T)+1`` per curve, the last one
            shifted back so that it overlaps), its float32 centring, and no upper bound on the errors (the original
            kept every row; the other cleaning rules change nothing on valid curves). Each curve then has ``sum`` of
            its window lengths per-observation rows, as the original returned. (The original returned the objects
            sorted by id, ``np.unique`` of the ids as strings; this function keeps the input order.)
        processor: the :class:`~astromer_hf.AstromerProcessor` whose window size and cleaning rules to use. None: the
            model folder's own, else ``AstromerProcessor.from_model_config(model.config)``. Its ``windows`` strategy
            (``"tiling"`` or ``"legacy"``) and ``centering`` are used; its ``padding`` is not (see below).
        progress: a progress bar; None: shown for inputs of at least 1,000 curves (``HF_HUB_DISABLE_PROGRESS_BARS``
            hides it).
        chunk_size: curves read at a time from a ``datasets.Dataset``.
        pack_padding: Astromer 1's additive mask only: compute each window's padding as one position that stands for
            all of it (see below) instead of ``window_size - L`` identical ones (the default). The same vectors up to
            float rounding (about 1e-6 relative), faster where windows are short; False pads every window to
            ``window_size`` as the original ``encode()`` did. Ignored with a key mask, which needs no padding.

    Padding and batching: windows are sorted by length before batching. With a key attention mask
    (``config.attention_mask_style == "key"``, Astromer 2) padding changes nothing, so each batch is padded only to
    its longest window; with Astromer 1's additive mask (``"additive_one"``) padding changes the outputs
    (``docs/architecture.md``), so every window gives what it gives padded to ``window_size`` as the released
    weights expect: with ``pack_padding`` (the default) a batch is one position wider than its longest window, the
    padding of a window of ``L`` observations being one position of key multiplicity ``window_size - L`` (the
    encoder's ``key_multiplicity``; further filler has multiplicity 0); without it every window is padded to
    ``window_size``. On the CPU packed batches hold at most the encoder's inference slice of windows
    (:func:`~astromer_hf.modeling_astromer.default_inference_batch_size`), which it would cut a larger batch into
    anyway, so that each slice is padded to its own longest window only.

    Returns:
        :class:`LightCurveEmbeddings`. Dropped curves are NaN rows with ``kept=False``, listed in the report (and
        logged as a warning), never a zero row.

    Raises:
        ValueError: malformed input (the message names the curve or column), an unknown pooling, or a processor
            with random windows.
        TypeError: an input container or model of an unsupported type.
    """
    embedder = _Embedder(model, pooling=pooling, batch_size=batch_size, device=device, dtype=dtype,
                         return_observations=return_observations, legacy=legacy, processor=processor,
                         pack_padding=pack_padding)
    source = _source(curves, chunk_size)
    parts = []
    with embedder.running(), _progress_bar(progress, source.n_curves) as bar:
        for chunk in source.chunks():
            parts.append(embedder.embed_chunk(chunk, bar))
    result = LightCurveEmbeddings.concatenate(parts)
    _log_report(result.report)
    return result


def embed_to_parquet(
    curves: Any,
    model: Any,
    path: str | os.PathLike[str],
    *,
    shard_size: int | None = None,
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
    **embed_kwargs: Any,
) -> EmbeddingFiles:
    """Embed ``curves`` as :func:`embed` does and write the rows to Parquet chunk by chunk, keeping none in memory.

    Without ``shard_size``, ``path`` is one Parquet file (one row group per chunk of ``chunk_size`` curves), written
    under a temporary name and renamed when complete. With it, ``path`` is a folder that receives
    ``part-00000.parquet``, ``part-00001.parquet``, ... of ``shard_size`` curves each. The columns are those of
    :meth:`LightCurveEmbeddings.to_arrow`. An existing file (or existing ``part-*.parquet`` shards) is an error unless
    ``overwrite``.

    ``embed_kwargs`` are :func:`embed`'s (``pooling``, ``batch_size``, ``device``, ``dtype``, ``return_observations``,
    ``legacy``, ``processor``, ``pack_padding``).
    """
    import pyarrow.parquet as pq

    if shard_size is not None and (isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1):
        raise ValueError(f"shard_size must be a positive integer or None, got {shard_size!r}")
    path = Path(path)
    if shard_size is None:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder: pass a file name, or shard_size to write shards into it")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        if path.is_file():
            raise FileExistsError(f"{path} is a file: shards are written into a folder")
        old_shards = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
        if old_shards and not overwrite:
            raise FileExistsError(f"{path} already holds {len(old_shards)} shard(s); pass overwrite=True "
                                  "(--overwrite) to replace them")
        path.mkdir(parents=True, exist_ok=True)
        for old in old_shards:
            old.unlink()
    embedder = _Embedder(model, **embed_kwargs)
    source = _source(curves, chunk_size)
    partial = path.with_name(f".{path.name}.partial")
    paths: list[Path] = []
    reports: list[CleaningReport] = []
    writer, rows_in_shard, kept, schema = None, 0, 0, None
    try:
        with embedder.running(), _progress_bar(progress, source.n_curves) as bar:
            for chunk in source.chunks():
                part = embedder.embed_chunk(chunk, bar)
                reports.append(part.report)
                kept += int(part.kept.sum())
                table = part.to_arrow()
                schema = schema or table.schema
                table = _conform(table, schema)
                while table.num_rows:
                    if writer is None:
                        target = partial if shard_size is None else path / f"part-{len(paths):05d}.parquet"
                        writer, rows_in_shard = pq.ParquetWriter(target, schema), 0
                        paths.append(path if shard_size is None else target)
                    take = table.num_rows if shard_size is None else min(table.num_rows, shard_size - rows_in_shard)
                    writer.write_table(table.slice(0, take))
                    table, rows_in_shard = table.slice(take), rows_in_shard + take
                    if shard_size is not None and rows_in_shard == shard_size:
                        writer.close()
                        writer = None
        if writer is not None:
            writer.close()
            writer = None
        if shard_size is None:
            partial.replace(path)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    report = merge_reports(reports)
    _log_report(report)
    return EmbeddingFiles(paths=paths, curves=report.curves_in, kept=kept, report=report)


def add_embeddings(
    dataset: Any,
    model: Any = "astromer-base",
    *,
    column: str = "embedding",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    map_kwargs: Mapping[str, Any] | None = None,
    **embed_kwargs: Any,
):
    """``dataset`` (a ``datasets.Dataset`` in the survey schema) with a new column of embeddings, through
    ``Dataset.map`` on ``chunk_size`` curves at a time (written to the dataset's cache like any ``map``).

    The column holds one float32 list per curve, null where the cleaning dropped the curve. ``embed_kwargs`` are
    :func:`embed`'s (``pooling``, ``batch_size``, ``device``, ``dtype``, ``legacy``, ``processor``,
    ``pack_padding``);
    ``map_kwargs`` go to ``Dataset.map`` (``cache_file_name``, ``desc`` ...).
    """
    import datasets
    import pyarrow as pa

    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"add_embeddings needs a datasets.Dataset, got {type(dataset).__name__}")
    if column in dataset.column_names:
        raise ValueError(f"the dataset already has a column {column!r}; pass column=... to name the new one")
    if embed_kwargs.get("return_observations"):
        raise ValueError("add_embeddings adds pooled vectors only; use embed(..., return_observations=True)")
    embedder = _Embedder(model, **embed_kwargs)
    spec = _DatasetSpec.of(dataset)
    offset = [0]
    reports: list[CleaningReport] = []

    def add(batch: pa.Table) -> pa.Table:
        part = embedder.embed_chunk(_chunk_from_arrow(batch, spec, offset[0]), None)
        offset[0] += batch.num_rows
        reports.append(part.report)
        return batch.append_column(column, _vector_array(part.vectors, part.kept))

    from datasets.fingerprint import generate_random_fingerprint

    options = {"desc": "Embedding light curves", "new_fingerprint": generate_random_fingerprint(), **(map_kwargs or {})}
    original_format = dataset.format
    with embedder.running():
        mapped = dataset.with_format("arrow").map(add, batched=True, batch_size=chunk_size, **options)
    if reports:
        _log_report(merge_reports(reports))
    return mapped.with_format(original_format["type"], columns=None, output_all_columns=False,
                              **original_format["format_kwargs"])


def read_lightcurves(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                     splits: Sequence[str] | None = None) -> Any:
    """Light curves from files or a folder, in a form :func:`embed` reads (what ``astromer embed INPUT ...`` accepts).

    * a prepared dataset folder (``astromer data prepare`` output, ``dataset_dict.json``): a ``DatasetDict`` of the
      chosen ``splits`` (default: all), memory-mapped; a folder of one saved ``Dataset``: that dataset;
    * ``*.csv`` (``.csv.gz`` ...) or ``*.parquet``: a long table, one row per observation, with the columns time, mag,
      err (or their aliases: ``mjd``, ``magnitude``, ``mag_err`` ...) and an id column (``object_id``, ``id`` ...);
    * any other file: one curve, a text table of three numeric columns time, mag, err (``#`` comments, blank or comma
      separated), returned as a one-curve long table whose ``id`` is the path as given;
    * a folder of such one-curve files (the layout of most survey archives: one file per star), or a list of
      one-curve files (``astromer embed stars/*.dat``): a long table with one curve per file, in file-name order for
      a folder (hidden files skipped) and in the given order for a list, the ``id`` being the file's name (a list:
      its path as given). A ``.csv`` / ``.parquet`` file among them must hold one curve. Every file is read
      before anything is embedded, so a bad file stops the run naming it, before any output is written.
    """
    if not isinstance(path, (str, os.PathLike)):
        paths = [Path(item) for item in path]
        if not paths:
            raise ValueError("no light-curve files given")
        if len(paths) == 1:
            return read_lightcurves(paths[0], splits=splits)
        if splits:
            raise ValueError("splits apply to a prepared dataset folder only, not to a list of files")
        folders = [str(item) for item in paths if item.is_dir()]
        if folders:
            raise ValueError(f"{folders[0]} is a folder: pass one folder, or a list of one-curve files")
        return _curve_files_table(paths, [str(item) for item in paths])
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no light curves at {path}")
    if path.is_dir():
        from datasets import load_from_disk

        if (path / "dataset_dict.json").is_file():
            dataset = load_from_disk(str(path))
            if splits:
                unknown = [name for name in splits if name not in dataset]
                if unknown:
                    raise ValueError(f"{path} has no split(s) {unknown}; its splits: {list(dataset)}")
                dataset = type(dataset)({name: dataset[name] for name in splits})
            return dataset
        if (path / "state.json").is_file():
            if splits:
                raise ValueError(f"{path} holds one dataset, not splits: drop the split option")
            return load_from_disk(str(path))
        if splits:
            raise ValueError(f"{path} is a folder of light-curve files: splits apply to a prepared dataset only")
        files = sorted(item for item in path.iterdir() if item.is_file() and not item.name.startswith("."))
        if not files:
            raise ValueError(f"{path} is neither a prepared dataset (no dataset_dict.json) nor a folder of light-curve "
                             "files (it holds no file): pass the folder `astromer data prepare` wrote, a folder of "
                             "one-curve files, a CSV / Parquet table or a text file of one curve")
        return _curve_files_table(files, [item.name for item in files])
    if splits:
        raise ValueError(f"{path} is a file: splits apply to a prepared dataset folder only")
    table = _read_table(path)
    return table if table is not None else _curve_files_table([path], [str(path)])


def _read_table(path: Path) -> Any:
    """A ``.csv`` / ``.parquet`` file as a DataFrame; None for any other file."""
    import pandas as pd

    suffixes = [suffix.lower() for suffix in path.suffixes]
    if ".csv" in suffixes:
        return pd.read_csv(path)
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return None


def _read_text_curve(path: Path) -> np.ndarray:
    """One curve from a text table of three numeric columns (``#`` comments; blank or comma separated; a first line
    of column names is skipped)."""
    text = path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    first = lines[0] if lines else ""
    delimiter = "," if "," in first else None
    header = 0
    if first:
        try:
            [float(token) for token in first.split(delimiter)]
        except ValueError:
            header = 1  # e.g. "mjd mag err": names, not numbers
    if len(lines) <= header:
        return np.empty((0, 3))
    try:
        values = np.loadtxt(lines[header:], delimiter=delimiter, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: not a text table of numbers ({error}); a text input holds one curve in three "
                         "columns time, mag, err (use a .csv or .parquet table with named columns for several "
                         "curves)") from None
    if values.shape[1] != 3:
        raise ValueError(f"{path}: expected three columns time, mag, err, got {values.shape[1]}")
    return values


def _curve_files_table(files: Sequence[Path], names: Sequence[str]) -> Any:
    """One-curve files -> a long DataFrame (``id``, ``time``, ``mag``, ``err``), one curve per file."""
    import pandas as pd

    from .lightcurves import as_lightcurves

    if len(set(names)) != len(names):
        raise ValueError("the same light-curve file is given twice: every file must be one curve of its own")
    curves = []
    for file in files:
        table = _read_table(file)
        if table is None:
            curves.append(_read_text_curve(file))
            continue
        try:
            parsed = as_lightcurves(table)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{file}: {error}") from None
        if len(parsed.curves) != 1:
            raise ValueError(f"{file} holds {len(parsed.curves)} curves; with several files each file must hold "
                             "one curve (embed a table of several curves on its own)")
        curves.append(parsed.curves[0])
    lengths = [len(curve) for curve in curves]
    empty = [file for file, length in zip(files, lengths) if length == 0]
    if empty:
        raise ValueError(f"{empty[0]} holds no observation ({len(empty)} empty file(s)): remove it, or it would have "
                         "no row in the output")
    values = np.concatenate(curves)
    # a categorical id column: one string per file, not one per observation
    ids = pd.Categorical.from_codes(np.repeat(np.arange(len(names)), lengths), categories=pd.Index(list(names)))
    return pd.DataFrame({"id": ids, "time": values[:, 0], "mag": values[:, 1], "err": values[:, 2]})


# ----------------------------------------------------------------------------------------------------------------------
# The model side
# ----------------------------------------------------------------------------------------------------------------------
class _Embedder:
    """An encoder, its processor settings and the pooling: turns chunks of curves into results."""

    def __init__(
        self,
        model: Any,
        *,
        pooling: str = "mean",
        batch_size: int = 256,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        return_observations: bool = False,
        legacy: bool = False,
        processor: Any = None,
        pack_padding: bool = True,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.pooling = pooling
        self.batch_size = int(batch_size)
        self.device = _device(device)
        self.autocast_dtype = _autocast_dtype(dtype)
        self.return_observations = bool(return_observations)
        self.encoder, layer_weights, default_processor = load_encoder(model, pooling=pooling)
        self.processor = processor if processor is not None else default_processor()
        for name in ("window_size", "windows", "centering", "clean", "min_observations", "max_error"):
            if not hasattr(self.processor, name):
                raise TypeError(f"processor must be an AstromerProcessor, got {type(self.processor).__name__} "
                                f"(it has no {name!r})")
        config = self.encoder.config
        self.hidden_size = int(config.hidden_size)
        self.window_size = int(self.processor.window_size)
        self.max_error = self.processor.max_error
        if legacy:  # the original's windows and centring, and no bound on the errors (it had none)
            self.strategy, self.centering, self.max_error = "legacy", "legacy_float32", None
        else:
            self.strategy, self.centering = self.processor.windows, self.processor.centering
        if self.strategy not in ("tiling", "legacy"):
            raise ValueError(f"embeddings need fixed windows: the processor's windows={self.strategy!r}; use "
                             "'tiling' (every observation once) or 'legacy' (the original encode())")
        #: A key mask ignores padding: pad each batch only to its longest window.
        self.bucket = getattr(config, "attention_mask_style", None) == "key"
        #: Astromer 1's additive mask with pack_padding: each window's padding as one position of multiplicity.
        self.pack = not self.bucket and bool(pack_padding)
        self.gamma = None
        if pooling == "gamma":
            n_layers = int(config.num_hidden_layers) + 1
            weights = layer_weights if layer_weights is not None else torch.full((n_layers,), 1.0 / n_layers)
            self.gamma = torch.softmax(weights.detach().float(), dim=0)

    def running(self):
        """Context of a run: the encoder in eval mode on the device, put back afterwards."""
        return _Placed(self.encoder, self.device)

    # -- one chunk ------------------------------------------------------------------------------------------------
    def embed_chunk(self, chunk: _Chunk, bar: _Bar | None) -> LightCurveEmbeddings:
        curves = chunk.curves
        n_curves = curves.n_curves
        processor = self.processor
        if processor.clean:
            rows, kept, lengths, report = select_clean_rows(
                curves, max_error=self.max_error, min_observations=processor.min_observations
            )
            cleaned = RaggedCurves(curves.values[rows], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        else:
            try:
                validate_lightcurves(curves)
            except ValueError as error:
                if not chunk.start:
                    raise
                raise ValueError(f"{error} (curve numbers count from input curve {chunk.start}, the first of this "
                                 "chunk)") from None
            rows, kept, lengths = np.arange(len(curves.values)), np.arange(n_curves), curves.lengths
            report = CleaningReport(n_curves, n_curves, len(curves.values), len(curves.values))
            cleaned = curves
        vectors = np.full((n_curves, self.hidden_size), np.nan, dtype=np.float32)
        kept_mask = np.zeros(n_curves, dtype=bool)
        kept_mask[kept] = True
        observations = [None] * n_curves if self.return_observations else None
        if len(kept):
            slices = window_slices(lengths, self.window_size, self.strategy)
            pooled, flat = self._run_windows(cleaned, slices, len(kept), bar, n_curves)
            vectors[kept] = pooled
            if observations is not None:
                self._stitch(observations, flat, curves, rows, kept, slices)
        if bar is not None:
            bar.finish_chunk(n_curves)
        return LightCurveEmbeddings(vectors=vectors, kept=kept_mask, ids=chunk.ids, report=report,
                                    observations=observations, pooling=self.pooling, columns=chunk.columns)

    def _stitch(self, observations: list, flat: np.ndarray, curves: RaggedCurves, rows: np.ndarray,
                kept: np.ndarray, slices: WindowSlices) -> None:
        """Split the flat per-observation rows into one array per curve (see ``LightCurveEmbeddings``)."""
        if self.strategy == "tiling":  # the windows cover each cleaned curve once, in order: back to the input rows
            aligned = np.full((len(curves.values), self.hidden_size), np.nan, dtype=np.float32)
            aligned[rows] = flat
            for index in kept.tolist():
                observations[index] = aligned[curves.offsets[index]:curves.offsets[index + 1]]
            return
        per_curve = np.bincount(slices.curve_index, weights=slices.length, minlength=len(kept)).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(per_curve)])
        for position, index in enumerate(kept.tolist()):
            observations[index] = flat[bounds[position]:bounds[position + 1]]

    @torch.inference_mode()
    def _run_windows(self, cleaned: RaggedCurves, slices: WindowSlices, n_kept: int, bar: _Bar | None,
                     n_chunk_curves: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled ``(n_kept, D)`` vectors of the windows' curves and, when asked, the flat per-observation rows
        (window after window, in window order)."""
        n_windows = len(slices.length)
        order = np.argsort(-slices.length, kind="stable")
        device, hidden = self.device, self.hidden_size
        curve_index = torch.from_numpy(slices.curve_index).to(device)
        counts = np.bincount(slices.curve_index, weights=slices.length, minlength=n_kept)
        flat = None
        if self.return_observations:
            row_start = np.concatenate([[0], np.cumsum(slices.length)[:-1]]).astype(np.int64)
            flat = np.empty((int(slices.length.sum()), hidden), dtype=np.float32)
        if self.pooling == "gamma":
            total = torch.zeros(len(self.gamma), n_kept, hidden, device=device)
        elif self.pooling == "max":
            total = torch.full((n_kept, hidden), float("-inf"), device=device)
        else:
            total = torch.zeros(n_kept, hidden, device=device)
        step = self._batch_step()
        batches = [order[i:i + step] for i in range(0, n_windows, step)]
        autocast = (torch.autocast(device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else nullcontext())
        for index, windows in _prefetch(batches, lambda b: self._prepare(cleaned, slices, b), device.type != "cpu"):
            magnitudes, times, mask, multiplicity = (
                None if x is None else torch.from_numpy(x).to(device, non_blocking=True) for x in windows)
            with autocast:
                out = self.encoder(magnitudes, times, attention_mask=mask, key_multiplicity=multiplicity,
                                   output_hidden_states=self.pooling == "gamma", return_dict=True)
            real = mask.bool()
            weights = real.unsqueeze(-1).float()
            owner = curve_index[torch.from_numpy(index).to(device)]
            states = out.last_hidden_state.float()
            if self.pooling == "mean":
                total.index_add_(0, owner, (states * weights).sum(1))
            elif self.pooling == "max":
                per_window = states.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1)
                total.scatter_reduce_(0, owner.unsqueeze(1).expand(-1, hidden), per_window, reduce="amax")
            else:  # one (B, D) sum per layer: the input embedding and every block
                for layer, layer_states in enumerate(out.hidden_states):
                    total[layer].index_add_(0, owner, (layer_states.float() * weights).sum(1))
            if flat is not None:
                lengths = slices.length[index]
                targets = np.repeat(row_start[index], lengths) + _rank_within(lengths)
                flat[targets] = states[real].cpu().numpy()
            if bar is not None:
                bar.advance(len(index) / n_windows * n_chunk_curves)
        counts_t = torch.from_numpy(counts).to(device=device, dtype=torch.float32).clamp_min(1.0)
        if self.pooling == "mean":
            pooled = total / counts_t[:, None]
        elif self.pooling == "max":
            pooled = total
        else:
            per_layer = total / counts_t[None, :, None]
            pooled = (self.gamma.to(device)[:, None, None] * per_layer).mean(0)
        return pooled.cpu().numpy().astype(np.float32, copy=False), flat

    def _batch_step(self) -> int:
        """Windows per forward pass: ``batch_size``; on the CPU, when batches are as wide as their longest window (a
        key mask, or pack_padding), at most the encoder's inference slice, which it would cut the batch into anyway
        (:func:`~astromer_hf.modeling_astromer.default_inference_batch_size`): each slice of windows sorted by length
        is then padded to its own longest window only."""
        if self.device.type != "cpu" or not (self.bucket or self.pack):
            return self.batch_size
        from .modeling_astromer import default_inference_batch_size

        step = getattr(self.encoder, "inference_batch_size", None)
        if step is None:
            step = default_inference_batch_size(self.encoder.config, self.window_size)
        return min(self.batch_size, step) if step > 0 else self.batch_size

    def _prepare(self, cleaned: RaggedCurves, slices: WindowSlices, index: np.ndarray):
        """The centred ``(B, width)`` magnitudes, times and attention mask of the windows ``index``, and the key
        multiplicities of a packed batch (else None)."""
        batch = WindowSlices(slices.curve_index[index], slices.start[index], slices.length[index])
        longest = int(batch.length.max())
        if self.bucket:
            width = longest
        elif self.pack:
            width = min(self.window_size, longest + 1)  # the longest window and its padding position
        else:
            width = self.window_size
        centred = center_windows(cleaned, batch, width, self.centering)
        multiplicity = None
        if self.pack:  # 1 at real positions, window_size - L at position L (zero-padded like all padding), 0 after
            position, length = np.arange(width), batch.length[:, None]
            multiplicity = np.where(position < length, 1.0,
                                    np.where(position == length, self.window_size - length, 0.0)).astype(np.float32)
        return index, (centred.magnitudes, centred.times, centred.attention_mask, multiplicity)


def load_encoder(model: Any, *, pooling: str = "mean"):
    """``(encoder, layer_weights or None, processor factory)`` for :func:`embed`'s ``model`` argument."""
    from .processing_astromer import AstromerProcessor

    if isinstance(model, torch.nn.Module):
        encoder = getattr(model, "astromer", model)
        config = getattr(encoder, "config", None)
        if getattr(config, "model_type", None) != "astromer" or not hasattr(encoder, "embeddings"):
            raise TypeError(f"model must be an Astromer model (any head) or a name / folder, got {type(model).__name__}")
        weights = getattr(model, "layer_weights", None)
        return encoder, weights, lambda: AstromerProcessor.from_model_config(config)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a release name, a folder, a Hub id or an Astromer model, got "
                        f"{type(model).__name__}")
    from transformers import AutoConfig

    from .configuration_astromer import AstromerConfig
    from .loading_bars import weight_loading_bars_hidden
    from .modeling_astromer import AstromerForLightCurveClassification, AstromerModel
    from .releases import resolve_name_or_path

    location = resolve_name_or_path(str(model))
    config = AutoConfig.from_pretrained(location)
    if not isinstance(config, AstromerConfig):
        raise ValueError(f"{model} holds a {getattr(config, 'model_type', type(config).__name__)!r} model, not an "
                         "Astromer model")
    weights = None
    with weight_loading_bars_hidden():  # embed's own bar is the one to watch; download bars stay
        if (pooling == "gamma" and config.classifier_pooling == "skip"
                and "AstromerForLightCurveClassification" in (config.architectures or [])):
            classifier = AstromerForLightCurveClassification.from_pretrained(location, config=config)
            encoder, weights = classifier.astromer, classifier.layer_weights
        else:
            encoder = AstromerModel.from_pretrained(location, config=config)

    def processor():
        if os.path.isdir(location):
            if (Path(location) / "preprocessor_config.json").is_file():
                return AstromerProcessor.from_pretrained(location)
            return AstromerProcessor.from_model_config(config)
        try:
            return AstromerProcessor.from_pretrained(location)
        except OSError:
            return AstromerProcessor.from_model_config(config)

    return encoder, weights, processor


class _Placed:
    """Holds an encoder in eval mode on a device; puts back its mode and device on exit."""

    def __init__(self, encoder: torch.nn.Module, device: torch.device) -> None:
        self.encoder, self.device = encoder, device

    def __enter__(self):
        parameter = next(self.encoder.parameters(), None)
        self.old_device = parameter.device if parameter is not None else self.device
        self.was_training = self.encoder.training
        self.encoder.to(self.device).eval()
        return self

    def __exit__(self, *exc) -> None:
        self.encoder.train(self.was_training)
        if self.old_device != self.device:
            self.encoder.to(self.old_device)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be None, 'cpu', 'cuda', 'cuda:1' ... or a torch.device, got {device!r}") from error


def _autocast_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """None for float32; the autocast dtype otherwise."""
    names = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, str) and dtype.lower() in names:
        return names[dtype.lower()]
    if dtype in (torch.bfloat16, torch.float16):
        return dtype
    raise ValueError(f"dtype must be None (float32), torch.bfloat16 or torch.float16, got {dtype!r}")


def _rank_within(counts: np.ndarray) -> np.ndarray:
    """``0..counts[g]-1`` for each group g, concatenated."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _prefetch(items: list, prepare, enabled: bool) -> Iterator:
    """``prepare(item)`` for each item; with ``enabled``, the next one is prepared in a thread while the caller
    works on the current one (the device computes while the CPU centres the next windows)."""
    if not enabled or len(items) < 2:
        for item in items:
            yield prepare(item)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, items[0])
        for item in items[1:]:
            ready = pending.result()
            pending = pool.submit(prepare, item)
            yield ready
        yield pending.result()


# ----------------------------------------------------------------------------------------------------------------------
# The input side
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class _Chunk:
    """Consecutive input curves ``start ..``, as one flat array, with their ids and carried columns."""

    curves: RaggedCurves
    ids: list
    columns: dict[str, list]
    start: int = 0


@dataclass
class _Source:
    n_curves: int
    chunks: Any  # () -> Iterator[_Chunk]


def _source(curves: Any, chunk_size: int) -> _Source:
    """Where the chunks of an input come from: one chunk for an in-memory input, ``chunk_size`` curves at a time
    from a dataset."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    paths = (str, os.PathLike)
    if isinstance(curves, paths) or (isinstance(curves, (list, tuple)) and curves
                                     and all(isinstance(item, paths) for item in curves)):
        curves = read_lightcurves(curves)  # files or a folder: what `astromer embed INPUT ...` reads
    datasets = sys.modules.get("datasets")
    if datasets is not None and isinstance(curves, datasets.DatasetDict):
        splits = {name: (split, _DatasetSpec.of(split, name)) for name, split in curves.items()}

        def chunks():
            start = 0
            for name, (split, spec) in splits.items():
                for chunk in _dataset_chunks(split, spec, chunk_size):
                    chunk.columns = {"split": [name] * chunk.curves.n_curves, **chunk.columns}
                    chunk.start += start
                    yield chunk
                start += len(split)

        return _Source(sum(len(split) for split, _ in splits.values()), chunks)
    if datasets is not None and isinstance(curves, datasets.Dataset):
        spec = _DatasetSpec.of(curves)
        return _Source(len(curves), lambda: _dataset_chunks(curves, spec, chunk_size))
    if datasets is not None and isinstance(curves, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise TypeError("an IterableDataset has no length to chunk: pass a Dataset (load_from_disk, "
                        "load_dataset without streaming) or embed it batch by batch")
    if _is_astropy_table(curves):
        curves = _astropy_to_frame(curves)
    parsed = as_lightcurves(curves)
    ragged = RaggedCurves.from_list(parsed.curves)
    ids = list(parsed.ids) if parsed.ids is not None else list(range(ragged.n_curves))
    chunk = _Chunk(ragged, ids, {})
    return _Source(ragged.n_curves, lambda: iter([chunk]))


@dataclass(frozen=True)
class _DatasetSpec:
    """Which columns of a survey-schema dataset hold the curves, their ids and the carried metadata."""

    time: str
    mag: str
    err: str
    id: str | None
    extra: tuple[str, ...]

    @classmethod
    def of(cls, dataset: Any, split: str | None = None) -> _DatasetSpec:
        names = list(dataset.column_names)
        where = f"split {split!r}: " if split else ""
        try:
            resolved = _resolve_columns(names)
        except ValueError as error:
            raise ValueError(f"{where}{error} (a dataset needs one row per curve with list columns time, mag, "
                             "mag_err)") from None
        for role, name in resolved.items():
            feature = dataset.features[name]
            inner = getattr(feature, "feature", None)
            dtype = getattr(inner, "dtype", "")
            if inner is None or not (dtype.startswith("float") or dtype.startswith("int")
                                     or dtype.startswith("uint")):
                raise ValueError(f"{where}column {name!r} ({role}) must hold one list of numbers per curve, got "
                                 f"{feature}")
        ids = _find_by_alias(names, ID_ALIASES)
        if len(ids) > 1:
            raise ValueError(f"{where}ambiguous object-id column: found {ids}; keep only one")
        extra = tuple(name for name in DATASET_EXTRA_COLUMNS if name in names and name not in resolved.values())
        return cls(resolved["time"], resolved["mag"], resolved["err"], ids[0] if ids else None, extra)

    @property
    def columns(self) -> list[str]:
        return [self.time, self.mag, self.err, *([self.id] if self.id else []), *self.extra]


def _dataset_chunks(dataset: Any, spec: _DatasetSpec, chunk_size: int) -> Iterator[_Chunk]:
    """``chunk_size`` rows at a time, read from the memory-mapped Arrow table (so memory stays flat)."""
    arrow = dataset.select_columns(spec.columns).with_format("arrow")
    # Pages read stay mapped into the process: unmap them as they pile up, or a survey's whole file ends up resident.
    page_budget = MappedPageBudget(entry["filename"] for entry in getattr(dataset, "cache_files", ()))
    for start in range(0, len(dataset), chunk_size):
        chunk = _chunk_from_arrow(arrow[start:start + chunk_size], spec, start)  # copies the values out of the map
        page_budget.check()
        yield chunk


def _chunk_from_arrow(table: Any, spec: _DatasetSpec, start: int) -> _Chunk:
    """A chunk from an Arrow table of survey-schema rows (row ``i`` is input curve ``start + i``)."""
    import pyarrow.compute as pc

    n_rows = table.num_rows
    ids = table.column(spec.id).to_pylist() if spec.id else list(range(start, start + n_rows))
    columns = [table.column(name) for name in (spec.time, spec.mag, spec.err)]
    lengths = [pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64) for column in columns]
    mismatch = np.flatnonzero((lengths[1] != lengths[0]) | (lengths[2] != lengths[0]))
    if mismatch.size:
        row = int(mismatch[0])
        raise ValueError(
            f"curve {start + row} (id {ids[row]!r}): columns {spec.time!r}, {spec.mag!r}, {spec.err!r} hold "
            f"{lengths[0][row]}, {lengths[1][row]} and {lengths[2][row]} values; they need one value per observation"
        )
    values = np.stack(
        [pc.list_flatten(column).to_numpy().astype(np.float64, copy=False) if n_rows else np.empty(0)
         for column in columns], axis=1)
    offsets = np.concatenate([[0], np.cumsum(lengths[0])]).astype(np.int64)
    extra = {name: table.column(name).to_pylist() for name in spec.extra}
    return _Chunk(RaggedCurves(values, offsets), ids, extra, start)


def _is_astropy_table(obj: Any) -> bool:
    astropy_table = sys.modules.get("astropy.table")
    return astropy_table is not None and isinstance(obj, astropy_table.Table)


def _astropy_to_frame(table: Any):
    """A long DataFrame from an astropy ``Table`` / ``TimeSeries``: ``Time`` columns as MJD, quantities as their
    values, masked numbers as NaN."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in table.colnames:
        column = table[name]
        if hasattr(column, "mjd"):  # astropy.time.Time (TimeSeries.time)
            columns[name] = np.asarray(column.mjd, dtype=np.float64)
            continue
        if getattr(column, "ndim", 1) != 1:
            continue  # multi-dimensional cells: not a curve column
        values = getattr(column, "value", column)  # a Quantity's numbers
        array = np.ma.asarray(values)
        if array.dtype.kind in "iuf":
            array = np.ma.filled(array.astype(np.float64), np.nan)
        else:
            array = np.ma.filled(array.astype(object), None)
        columns[name] = np.asarray(array)
    return pd.DataFrame(columns)


# ----------------------------------------------------------------------------------------------------------------------
# Progress, reports, Arrow helpers
# ----------------------------------------------------------------------------------------------------------------------
class _Bar:
    """A tqdm bar counted in curves, advanced by fractions of a chunk as its windows are done."""

    def __init__(self, total: int) -> None:
        from huggingface_hub.utils import tqdm

        self.bar = tqdm(total=total, unit="curve", desc="Embedding light curves", dynamic_ncols=True)
        self.done = 0.0
        self.chunk_start = 0

    def advance(self, curves: float) -> None:
        before = int(self.done)
        self.done += curves
        if int(self.done) > before:
            self.bar.update(int(self.done) - before)

    def finish_chunk(self, n_curves: int) -> None:
        self.chunk_start += n_curves
        if self.chunk_start > int(self.done):
            self.bar.update(self.chunk_start - int(self.done))
        self.done = float(self.chunk_start)

    def close(self) -> None:
        self.bar.close()


@contextmanager
def _progress_bar(progress: bool | None, n_curves: int) -> Iterator[_Bar | None]:
    """A bar over ``n_curves`` (None when not shown: ``progress=False``, or None and a short input)."""
    show = progress if progress is not None else n_curves >= PROGRESS_MIN_CURVES
    bar = _Bar(n_curves) if show else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _log_report(report: CleaningReport) -> None:
    if report.changed:
        logger.warning("%s", report)


def _pyarrow():
    try:
        import pyarrow
    except ImportError as error:  # pragma: no cover - pyarrow comes with datasets and pandas' parquet support
        raise ImportError("writing embeddings to Arrow / Parquet needs pyarrow: pip install pyarrow") from error
    return pyarrow


def _id_array(ids: list):
    pa = _pyarrow()
    try:
        return pa.array(ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them readable as text
        return pa.array([None if value is None else str(value) for value in ids], type=pa.string())


def _vector_array(vectors: np.ndarray, kept: np.ndarray):
    """``fixed_size_list<float32, D>`` rows, null where not ``kept``."""
    pa = _pyarrow()
    values = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, vectors.shape[1], mask=pa.array(~np.asarray(kept, dtype=bool)))


def _observation_array(observations: list[np.ndarray | None], dim: int):
    """``large_list<fixed_size_list<float32, D>>``: the per-observation vectors of each curve, null for a dropped
    curve."""
    pa = _pyarrow()
    present = np.array([rows is not None for rows in observations], dtype=bool)
    counts = np.array([len(rows) if rows is not None else 0 for rows in observations], dtype=np.int64)
    flat = (np.concatenate([rows for rows in observations if rows is not None]) if present.any()
            else np.empty((0, dim), dtype=np.float32))
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1).astype(np.float32), type=pa.float32()), dim)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    return pa.LargeListArray.from_arrays(offsets, inner, mask=pa.array(~present))


def _conform(table: Any, schema: Any):
    """``table`` with the columns of ``schema`` (a later chunk whose carried column was all null, say)."""
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except Exception as error:  # noqa: BLE001 - say which column differs
        raise ValueError(f"chunk columns {table.schema} do not match the first chunk's {schema}: {error}") from error


__all__ = ["LightCurveEmbeddings", "EmbeddingFiles", "embed", "embed_to_parquet", "add_embeddings", "read_lightcurves",
           "load_encoder", "merge_reports", "POOLINGS"]
