"""``astromer_archive``: the Astromer authors' own dataset layouts, for users who hold those archives.

Two layouts are read (spec §5 "Raw format" and "Intermediate parquet format"):

* ``raw_data/<ds>/metadata.csv`` (columns ``ID, Class, Path, N, Band, ...``) with one file per light curve, found at
  ``Path`` (relative to the metadata file's folder) or at ``LCs/<ID>.dat``; the files are comma-, semicolon- or
  whitespace-separated, with or without a header, and their first three columns are time, magnitude and error;
* ``metadata.parquet`` (``ID, Class, Band, newID, ...``) with ``light_curves/shard_*.parquet`` in long format
  (``mjd, mag, errmag, newID``), read shard by shard and batch by batch so memory stays flat.

``data_dir`` is the folder holding the metadata file. Configurations: ``macho`` (unlabelled pretraining set),
``alcock`` (the labelled MACHO set of the papers: 6 classes, the four ``LPV_Wood*`` groups merged into ``LPV``,
``UNK`` / ``std`` / ``Dubious`` and any other class dropped), ``ogle`` and ``atlas`` (classes as found in the
metadata).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..builder import LightCurveBuilder, LightCurveConfig

ALCOCK_CLASSES = ("Cep_0", "Cep_1", "EC", "LPV", "RRab", "RRc")
UNLABELLED = {"macho"}


@dataclass
class AstromerArchiveConfig(LightCurveConfig):
    """Args: data_dir: folder holding ``metadata.csv`` or ``metadata.parquet``; dataset: survey name of the rows."""

    data_dir: str | None = None
    dataset: str = "macho"


class AstromerArchive(LightCurveBuilder):
    """Light curves from the Astromer authors' ``metadata.csv`` + ``LCs`` or parquet-shard layouts."""

    BUILDER_CONFIG_CLASS = AstromerArchiveConfig
    BUILDER_CONFIGS = [AstromerArchiveConfig(name=name, dataset=name) for name in ("macho", "alcock", "ogle", "atlas")]
    DEFAULT_CONFIG_NAME = "macho"
    SURVEY = "astromer_archive"
    CITATION = "Donoso-Oliva et al. 2023, A&A 670, A54"

    # ------------------------------------------------------------------------------------------------ metadata
    def _folder(self) -> Path:
        if not self.config.data_dir:
            raise ValueError("astromer_archive needs data_dir: the folder holding metadata.csv or metadata.parquet")
        folder = Path(self.config.data_dir).expanduser()
        if not (folder / "metadata.csv").is_file() and not (folder / "metadata.parquet").is_file():
            raise FileNotFoundError(f"neither metadata.csv nor metadata.parquet in {folder}")
        return folder

    def _metadata(self) -> pd.DataFrame:
        if getattr(self, "_metadata_cache", None) is None:
            folder = self._folder()
            path = folder / ("metadata.parquet" if (folder / "metadata.parquet").is_file() else "metadata.csv")
            with self.reading(path):
                metadata = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            if "ID" not in metadata.columns:
                raise ValueError(f"the metadata of {folder} has no ID column (columns: {list(metadata.columns)})")
            metadata["ID"] = metadata["ID"].astype(str)
            metadata["label"] = self._labels(metadata)
            self._metadata_cache = metadata
        return self._metadata_cache

    def _labels(self, metadata: pd.DataFrame) -> pd.Series:
        if self.config.dataset in UNLABELLED or "Class" not in metadata.columns:
            return pd.Series([None] * len(metadata), index=metadata.index, dtype=object)
        classes = metadata["Class"].astype(str).str.strip()
        if self.config.dataset == "alcock":
            classes = classes.where(~classes.str.startswith("LPV"), "LPV")
            return classes.where(classes.isin(ALCOCK_CLASSES), None)
        return classes.where(metadata["Class"].notna(), None)

    def class_names(self) -> tuple[str, ...]:
        if self.config.dataset == "alcock":
            return ALCOCK_CLASSES
        if self.config.dataset in UNLABELLED or not self.config.data_dir:
            return ()
        return tuple(sorted(self._metadata()["label"].dropna().unique()))

    # ------------------------------------------------------------------------------------------------ records
    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        folder = self._folder()
        metadata = self._metadata()
        if self.config.dataset == "alcock":
            metadata = metadata[metadata["label"].notna()]
        if (folder / "metadata.parquet").is_file():
            yield from self._parquet_records(folder, metadata, keep)
        else:
            yield from self._csv_records(folder, metadata, keep)

    def _record(self, meta: dict, values: np.ndarray) -> dict:
        return {
            "object_id": meta["ID"],
            "survey": self.config.dataset,
            "band": str(meta.get("Band", "")) if pd.notna(meta.get("Band", "")) else "",
            "time": values[:, 0],
            "mag": values[:, 1],
            "mag_err": values[:, 2],
            "label": meta["label"],
        }

    def _csv_records(self, folder: Path, metadata: pd.DataFrame, keep: Callable[[str], bool]) -> Iterator[dict]:
        for meta in metadata.to_dict("records"):
            if not keep(meta["ID"]):
                continue
            path = folder / str(meta["Path"]) if "Path" in meta and pd.notna(meta["Path"]) else None
            if path is None or not path.is_file():
                path = folder / "LCs" / f"{meta['ID']}.dat"
            if not path.is_file():
                raise FileNotFoundError(f"light curve of {meta['ID']} not found (looked for {path})")
            with self.reading(path):
                values = read_lightcurve_table(path)
            yield self._record(meta, values)

    def _parquet_records(self, folder: Path, metadata: pd.DataFrame, keep: Callable[[str], bool]) -> Iterator[dict]:
        if "newID" not in metadata.columns:
            raise ValueError(f"{folder / 'metadata.parquet'} has no newID column to join the light-curve shards")
        by_new_id = {str(k): v for k, v in zip(metadata["newID"].astype(str), metadata.to_dict("records"))}
        shards = sorted((folder / "light_curves").glob("shard_*.parquet"))
        if not shards:
            raise FileNotFoundError(f"no light_curves/shard_*.parquet under {folder}")
        for shard in shards:
            with self.reading(shard):
                for new_id, values in _grouped_curves(shard):
                    meta = by_new_id.get(new_id)
                    if meta is not None and keep(meta["ID"]):
                        yield self._record(meta, values)


def _grouped_curves(shard: Path, batch_size: int = 262_144) -> Iterator[tuple[str, np.ndarray]]:
    """``(newID, [N, 3] values)`` of a long-format shard whose rows are grouped by ``newID``, batch by batch."""
    pending_id, pending = None, []
    columns = ["mjd", "mag", "errmag", "newID"]
    parquet = pq.ParquetFile(shard)
    missing = [name for name in columns if name not in parquet.schema_arrow.names]
    if missing:
        raise ValueError(f"{shard} lacks the column(s) {missing} of the long format ({parquet.schema_arrow.names})")
    for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
        frame = batch.to_pandas()
        if frame["newID"].isna().any():
            raise ValueError(f"{shard}: {int(frame['newID'].isna().sum())} row(s) without a newID")
        ids = frame["newID"].astype(str).to_numpy(dtype=object)
        try:
            values = frame[["mjd", "mag", "errmag"]].to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{shard}: mjd, mag and errmag must hold numbers ({err})") from None
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        for start, end in zip(starts, ends):
            if ids[start] == pending_id:
                pending.append(values[start:end])
                continue
            if pending_id is not None:
                yield pending_id, np.concatenate(pending)
            pending_id, pending = ids[start], [values[start:end]]
    if pending_id is not None:
        yield pending_id, np.concatenate(pending)


def read_lightcurve_table(path: Path) -> np.ndarray:
    """``[N, 3]`` float64 time, magnitude, error from the first three columns of a text light-curve file.

    The separator (comma, semicolon or white space) and a header row are detected from the first data line;
    lines starting with ``#`` are comments.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip() and not line.lstrip().startswith("#")), "")
    separator = "," if "," in first else ";" if ";" in first else r"\s+"
    fields = [f for f in (first.split(separator) if separator != r"\s+" else first.split()) if f.strip()]
    if len(fields) < 3:
        raise ValueError(f"{path} has fewer than three columns (time, magnitude, error) in its first line {first!r}")
    try:
        [float(f) for f in fields[:3]]
        header = None
    except ValueError:
        header = 0
    try:
        table = pd.read_csv(path, sep=separator, header=header, comment="#", usecols=[0, 1, 2], engine="c")
        return table.to_numpy(dtype=np.float64)
    except ValueError as err:  # pandas' ParserError, UnicodeDecodeError, text in a number column...
        raise ValueError(f"{path}: not three numeric columns (time, magnitude, error): {err}") from None
