"""The base `datasets` builder shared by every survey: common schema, cleaning with a report, hash splits.

A survey builder subclasses :class:`LightCurveBuilder` and implements :meth:`LightCurveBuilder._records`, which
yields one raw record per object and band (``object_id``, ``band``, ``time``, ``mag``, ``mag_err``, optionally
``flux``/``flux_err``, ``label`` as a class name or None, ``ra``, ``dec`` and the survey's metadata columns). The base
class then

* assigns the record to train / validation / test from a hash of ``object_id`` (:func:`~astromer_hf.data.splits.
  hash_split`), before the record is parsed when the survey allows it (``keep`` callback);
* applies the cleaning of spec §1.1 (:func:`astromer_hf.lightcurves.select_clean_rows`) to the time-ordered
  columns, counting every rule;
* writes rows of the schema of :mod:`astromer_hf.data.schema`, streaming: nothing but the current record is held.

The per-split cleaning report is stored in the dataset's ``info.description`` (see :func:`cleaning_report`), so it
travels with the Arrow files, ``save_to_disk`` and ``push_to_hub``.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from ..lightcurves import RaggedCurves, select_clean_rows
from .download import download_file, join_url
from .schema import SEQUENCE_COLUMNS, lightcurve_features
from .splits import SPLIT_NAMES, check_fractions, hash_split

REPORT_MARKER = "astromer_hf cleaning report: "
REPORT_COUNTERS = (
    "curves_in",
    "curves_out",
    "observations_in",
    "observations_out",
    "nonfinite_rows",
    "bad_error_rows",
    "resorted_curves",
    "duplicate_time_rows",
    "short_curves",
)


@dataclass
class LightCurveConfig(datasets.BuilderConfig):
    """Settings shared by every survey builder.

    Args:
        split_fractions: train / validation / test fractions of the objects.
        split_salt: changes the hash split without changing the object ids.
        max_error: rows with an error not in ``(0, max_error)`` are dropped (None: no upper bound).
        min_observations: curves with fewer observations after cleaning are dropped.
        base_url: where the survey files are downloaded from (a mirror); None for the environment variable
            ``ASTROMER_<SURVEY>_BASE_URL`` or else the survey's public source.
        download_dir: where downloaded files are kept (and resumed); None for ``$ASTROMER_HF_DOWNLOADS`` or else
            ``~/.cache/astromer_hf/downloads``. Files are stored under ``<download_dir>/<survey>/<path>``.
    """

    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_salt: str = ""
    max_error: float | None = 1.0
    min_observations: int = 5
    base_url: str | None = None
    download_dir: str | None = None

    def __post_init__(self):
        super().__post_init__()
        self.split_fractions = check_fractions(self.split_fractions)
        if self.min_observations < 2:
            raise ValueError(f"min_observations must be at least 2, got {self.min_observations}")
        if self.max_error is not None and not self.max_error > 0:
            raise ValueError(f"max_error must be positive or None, got {self.max_error}")


class LightCurveBuilder(datasets.GeneratorBasedBuilder):
    """Base class of the survey builders (not used directly)."""

    BUILDER_CONFIG_CLASS = LightCurveConfig
    SURVEY = ""
    BASE_URL = ""
    HOMEPAGE = ""
    CITATION = ""
    FLUX = False

    def class_names(self) -> tuple[str, ...]:
        """Class names of the current configuration (empty when unlabelled)."""
        return ()

    def extra_features(self) -> dict[str, object]:
        """Survey-specific metadata columns of the current configuration."""
        return {}

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=f"{self.SURVEY} light curves in the astromer_hf schema.",
            features=lightcurve_features(self.class_names(), flux=self.FLUX, extra=self.extra_features()),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def base_url(self) -> str:
        """The configured mirror, else ``$ASTROMER_<SURVEY>_BASE_URL``, else the survey's public source."""
        return self.config.base_url or os.environ.get(f"ASTROMER_{self.SURVEY.upper()}_BASE_URL") or self.BASE_URL

    def _create_builder_config(self, *args, **kwargs):
        # `datasets` copies a predefined configuration and applies keyword overrides with setattr, after
        # `__post_init__`: run the configuration's checks and normalisation again on the final values.
        config, config_id = super()._create_builder_config(*args, **kwargs)
        config.__post_init__()
        return config, config_id

    def download_root(self) -> Path:
        """This survey's download folder: ``<download_dir>/<survey>``."""
        root = self.config.download_dir or os.environ.get("ASTROMER_HF_DOWNLOADS") or "~/.cache/astromer_hf/downloads"
        return Path(root).expanduser() / self.SURVEY

    def download(self, relative_path: str, *, query: dict | None = None, sha256: str | None = None) -> Path:
        """Download ``<base_url>/<relative_path>[?<query>]`` (resumable, verified when ``sha256`` is published,
        recorded in the folder's manifest otherwise) and return the local file.

        Service queries (``query``, url-encoded in order) are cached under ``<relative_path>__<query>``.
        """
        url, local = join_url(self.base_url(), relative_path), relative_path
        if query:
            encoded = urllib.parse.urlencode(query)
            url, local = f"{url}?{encoded}", f"{relative_path}__{urllib.parse.unquote(encoded).replace('/', '_')}"
        destination = self.download_root() / local
        return download_file(url, destination, sha256=sha256).path

    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        """Download what the survey needs; the returned dict is passed to :meth:`_records`."""
        return {}

    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        """Yield raw records. Call ``keep(object_id)`` before parsing an object's photometry and skip it when False."""
        raise NotImplementedError

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        sources = self._sources(dl_manager)
        self._reports: dict[str, dict] = {}
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"split": name, "sources": sources})
            for name, fraction in zip(SPLIT_NAMES, self.config.split_fractions)
            if fraction > 0
        ]

    def _generate_examples(self, split: str, sources: dict) -> Iterator[tuple[str, dict]]:
        config = self.config

        def keep(object_id: str) -> bool:
            return hash_split(object_id, config.split_fractions, config.split_salt) == split

        report = dict.fromkeys(REPORT_COUNTERS, 0)
        for record in self._records(sources, keep):
            if not keep(record["object_id"]):
                continue
            row = self._clean(record, report)
            if row is not None:
                yield f"{row['object_id']}/{row['band']}", row
        self._reports[split] = report
        self.info.description = describe_reports(self.SURVEY, self._reports)

    def _clean(self, record: dict, report: dict) -> dict | None:
        """Cleaned schema row of one record, or None when the curve is dropped; counts go into ``report``."""
        values = np.column_stack(
            [np.asarray(record[name], dtype=np.float64) for name in ("time", "mag", "mag_err")]
        ).reshape(-1, 3)
        curves = RaggedCurves(values, np.array([0, len(values)], dtype=np.int64))
        rows, kept, _, outcome = select_clean_rows(
            curves, max_error=self.config.max_error, min_observations=self.config.min_observations
        )
        for name in REPORT_COUNTERS:
            report[name] += getattr(outcome, name)
        if len(kept) == 0:
            return None
        row = {key: value for key, value in record.items() if key not in SEQUENCE_COLUMNS}
        for name in SEQUENCE_COLUMNS:
            if name in record:
                row[name] = np.asarray(record[name])[rows]
        row.setdefault("survey", self.SURVEY)
        row["n_obs"] = len(rows)
        row.setdefault("ra", None)
        row.setdefault("dec", None)
        row.setdefault("label", None)
        return row


def describe_reports(survey: str, reports: dict[str, dict]) -> str:
    """The dataset description: a sentence and the per-split cleaning report as one JSON line."""
    return f"{survey} light curves in the astromer_hf schema.\n{REPORT_MARKER}{json.dumps(reports, sort_keys=True)}"


def cleaning_report(info: datasets.DatasetInfo) -> dict[str, dict]:
    """The per-split cleaning report stored in a dataset's ``info`` (empty when there is none)."""
    for line in (info.description or "").splitlines():
        if line.startswith(REPORT_MARKER):
            return json.loads(line[len(REPORT_MARKER) :])
    return {}
