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

Configuration overrides (keyword arguments, ``--set KEY=VALUE``) are checked against the field types of the
configuration dataclass before `datasets` sees them (:func:`check_settings`). Downloads go through
:meth:`LightCurveBuilder.fetch`: a truncated or garbage archive is refused before it is cached
(:func:`archive_problem`); a file that still cannot be parsed raises :class:`SurveyDataError` naming the survey and
the file, and a downloaded one is deleted from the cache so that the next run fetches it again.
"""

from __future__ import annotations

import bz2
import collections.abc
import contextlib
import dataclasses
import gzip
import json
import numbers
import os
import re
import tarfile
import types
import typing
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets.exceptions import DatasetGenerationError

from ..lightcurves import RaggedCurves, select_clean_rows
from .download import DEFAULT_DEADLINE, DownloadError, discard, download_file, join_url
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
        download_deadline: seconds one file may take to download, retries included (None: no limit). A file
            that runs out of time keeps its partial bytes, and the next run resumes them.
        download_retries: further attempts after a transient download failure.
    """

    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_salt: str = ""
    max_error: float | None = 1.0
    min_observations: int = 5
    base_url: str | None = None
    download_dir: str | None = None
    download_deadline: float | None = DEFAULT_DEADLINE
    download_retries: int = 3

    def __post_init__(self):
        super().__post_init__()
        self.split_fractions = check_fractions(self.split_fractions)
        if self.min_observations < 2:
            raise ValueError(f"min_observations must be at least 2, got {self.min_observations}")
        if self.max_error is not None and not self.max_error > 0:
            raise ValueError(f"max_error must be positive or None, got {self.max_error}")
        if self.download_deadline is not None and not self.download_deadline > 0:
            raise ValueError(f"download_deadline must be positive seconds or None, got {self.download_deadline}")
        if self.download_retries < 0:
            raise ValueError(f"download_retries must be 0 or more, got {self.download_retries}")


def archive_problem(path: Path, name: str) -> str | None:
    """Why a compressed download does not read to its end (sizes, CRCs, tar members), or None.

    gzip, bzip2 and zip are told by their first bytes; ``*.tar*`` / ``*.tgz`` names are walked member by member;
    ``*.tar.gz`` / ``*.tgz`` / ``*.zip`` names must be compressed. Other files (a plain ``.gz`` too: a mirror may
    serve MACHO tiles decompressed) are not checked.
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
    lower, gz = name.lower(), magic.startswith(b"\x1f\x8b")
    is_tar = lower.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2"))
    try:
        if magic in (b"PK\x03\x04", b"PK\x05\x06"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return f"zip member {bad} is corrupt" if bad else None
        if lower.endswith((".tar.gz", ".tgz", ".zip")) and not gz:
            return f"not a {'zip' if lower.endswith('.zip') else 'gzip'} file (it starts with {magic!r})"
        opener = gzip.open if gz else bz2.open if magic.startswith(b"BZh") else open if is_tar else None
        if opener is not None:
            with opener(path, "rb") as stream:
                if is_tar:
                    for _member in tarfile.open(fileobj=stream, mode="r|"):
                        pass
                while stream.read(1 << 20):  # to the end: the gzip / bzip2 trailer holds the length and CRC
                    pass
    except (OSError, EOFError, ValueError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as err:
        return f"{type(err).__name__}: {err}"
    return None


class SurveyDataError(DatasetGenerationError, ValueError):
    """A source file of a survey could not be read; the message names the survey and the file (and its URL)."""


#: Fields of `datasets.BuilderConfig` that are not overridden through settings (passed on unchecked).
_UNCHECKED_FIELDS = frozenset({"name", "version", "data_files", "description"})
_INTEGER_RE = re.compile(r"\s*[+-]?\d[\d_]*\s*")
_NULL_WORDS = ("null", "none")


class _Mismatch(Exception):
    pass


def check_settings(config_class: type, settings: dict, survey: str = "") -> dict:
    """``settings`` (configuration overrides) converted to the types of ``config_class``'s fields.

    Text, as given on a command line, is read by field type: integers (digits only: ``1.5``, ``1e12``, ``true``
    and empty values are refused), numbers, ``true`` / ``false``, ``null`` where a field may be None, lists as JSON
    (``[1, 2]``) or comma-separated, mappings as JSON objects; text fields keep the text as written. Values that are
    already Python objects are checked the same way.

    Raises:
        ValueError: an unknown key (the known ones are listed), or a value of the wrong type, naming the key, the
            value and the type wanted.
    """
    hints = typing.get_type_hints(config_class)
    known = sorted(f.name for f in dataclasses.fields(config_class) if f.name not in _UNCHECKED_FIELDS)
    where = f" of {survey}" if survey else ""
    checked = {}
    for key, value in settings.items():
        if key in _UNCHECKED_FIELDS:
            checked[key] = value
        elif key not in known:
            raise ValueError(f"unknown setting {key!r}{where}; the settings are: {', '.join(known)}")
        else:
            try:
                checked[key] = _conform(value, hints[key])
            except _Mismatch:
                raise ValueError(
                    f"setting {key}={value!r}{where}: expected {_describe(hints[key])}"
                ) from None
    return checked


def _conform(value, hint):
    """``value`` as ``hint`` (parsing text by type), or :class:`_Mismatch`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    text = value.strip() if isinstance(value, str) else None
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (text is not None and text.lower() in _NULL_WORDS)):
            return None
        for option in (a for a in args if a is not type(None)):
            with contextlib.suppress(_Mismatch):
                return _conform(value, option)
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool) or (text is not None and text.lower() in ("true", "false")):
            return value if isinstance(value, bool) else text.lower() == "true"
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy integers too
            return int(value)
        if text is not None and _INTEGER_RE.fullmatch(text):
            with contextlib.suppress(ValueError):  # more digits than int() reads
                return int(text)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):  # an integer beyond the float range
                return float(value)
            raise _Mismatch
        with contextlib.suppress(ValueError):
            if text and text.lower() not in ("true", "false"):
                return float(text)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list, collections.abc.Sequence):
        items = _decoded(value, list)
        if items is None and text is not None:
            items = [part.strip() for part in text.split(",")] if text else []
        if items is None:
            raise _Mismatch
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(items) != len(args):
            raise _Mismatch
        kinds = args if fixed else [args[0] if args else typing.Any] * len(items)
        items = [_conform(item, kind) for item, kind in zip(items, kinds)]
        return items if origin is list else tuple(items)
    elif origin in (dict, collections.abc.Mapping):
        mapping = _decoded(value, dict)
        if mapping is None:
            raise _Mismatch
        key_hint, value_hint = args or (typing.Any, typing.Any)
        return {_conform(k, key_hint): _conform(v, value_hint) for k, v in mapping.items()}
    else:
        return value  # annotations not checked here (the configuration's own checks apply)
    raise _Mismatch


def _decoded(value, kind: type):
    """``value`` when it is a ``kind`` (list: list, tuple or numpy array), the JSON text of one, else None."""
    if kind is list and hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple) if kind is list else dict):
        return list(value) if kind is list else value
    if isinstance(value, str):
        with contextlib.suppress(ValueError, RecursionError):  # RecursionError: JSON nested too deep
            decoded = json.loads(value)
            if isinstance(decoded, kind):
                return decoded
    return None


def _describe(hint) -> str:
    """Words for a type annotation, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
        return f"a list (JSON or comma-separated), each {_describe(args[0]) if args else 'a value'}"
    if origin in (dict, collections.abc.Mapping):
        return f"a JSON object of {' to '.join(_describe(a) for a in args) or 'values'}"
    words = {int: "an integer (digits only, e.g. 2000)", float: "a number", bool: "true or false", str: "text",
             type(None): "null"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


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
        return self.config.base_url or os.environ.get(self.mirror_variable()) or self.BASE_URL

    def mirror_variable(self) -> str:
        """The environment variable naming a mirror of this survey: ``ASTROMER_<SURVEY>_BASE_URL``."""
        return f"ASTROMER_{self.SURVEY.upper()}_BASE_URL"

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        # `datasets` copies a predefined configuration and applies keyword overrides with setattr, after
        # `__post_init__`: check the overrides' types first, and run the configuration's checks again at the end.
        config_kwargs = check_settings(self.BUILDER_CONFIG_CLASS, config_kwargs, self.SURVEY)
        config, config_id = super()._create_builder_config(config_name, custom_features, config_id, **config_kwargs)
        config.__post_init__()
        return config, config_id

    def download_and_prepare(self, *args, **kwargs):
        """`datasets.DatasetBuilder.download_and_prepare`, raising a failed download or an unreadable source file as
        itself (naming the survey, the file or URL) instead of inside a generic `DatasetGenerationError`."""
        try:
            return super().download_and_prepare(*args, **kwargs)
        except DatasetGenerationError as error:
            if isinstance(error.__cause__, (SurveyDataError, DownloadError)):
                raise error.__cause__  # noqa: B904 (its own cause chain is kept)
            raise

    def download_root(self) -> Path:
        """This survey's download folder: ``<download_dir>/<survey>``."""
        root = self.config.download_dir or os.environ.get("ASTROMER_HF_DOWNLOADS") or "~/.cache/astromer_hf/downloads"
        return Path(root).expanduser() / self.SURVEY

    def download(self, relative_path: str, *, query: dict | None = None, sha256: str | None = None) -> Path:
        """Download ``<base_url>/<relative_path>[?<query>]`` into the survey's folder (see :meth:`fetch`).

        Service queries (``query``, url-encoded in order) are cached under ``<relative_path>__<query>``.
        """
        url, local = join_url(self.base_url(), relative_path), relative_path
        if query:
            encoded = urllib.parse.urlencode(query)
            url, local = f"{url}?{encoded}", f"{relative_path}__{urllib.parse.unquote(encoded).replace('/', '_')}"
        return self.fetch(url, self.download_root() / local, sha256=sha256)

    def fetch(self, url: str, destination: Path, *, sha256: str | None = None) -> Path:
        """:func:`~astromer_hf.data.download.download_file` with this configuration's ``download_retries`` and
        ``download_deadline``, the archive check (:func:`archive_problem`) and the `datasets` download configuration
        this builder was given (``download_mode="force_redownload"`` fetches again, ``disable_tqdm`` hides the
        progress bar). A :class:`~astromer_hf.data.download.DownloadError` names the survey and, for a file under
        :meth:`base_url`, how to download from a mirror instead."""
        options = getattr(self, "_download_config", None) or datasets.DownloadConfig()
        try:
            return download_file(
                url, destination, sha256=sha256, retries=self.config.download_retries,
                deadline=self.config.download_deadline, force=options.force_download,
                progress=not options.disable_tqdm, check=archive_problem,
            ).path
        except DownloadError as error:
            base = self.base_url().rstrip("/")
            hint = (f"; to download from a mirror, set base_url (astromer data prepare {self.SURVEY} --set "
                    f"base_url=URL; in a recipe, base_url under prepare:) or the environment variable "
                    f"{self.mirror_variable()}") if base and url.startswith(f"{base}/") else ""
            error.args = (f"{self.SURVEY}: {error.args[0]}{hint}", *error.args[1:])
            raise

    @contextlib.contextmanager
    def reading(self, path: str | os.PathLike[str]):
        """Wrap the parsing of one source file: a failure becomes a :class:`SurveyDataError` naming the survey and
        the file; a file of the download folder is deleted (with its manifest entry) so the next run fetches it
        again, a file of the user's is left alone."""
        try:
            yield
        except (SurveyDataError, DownloadError):
            raise
        except Exception as error:
            path = Path(path)
            if path.resolve().is_relative_to(self.download_root().resolve()) and path.is_file():
                url = discard(path)
                source = f" (downloaded from {url})" if url else ""
                advice = "it was deleted from the download folder, so the next run downloads it again"
            else:
                source, advice = "", "check or replace it"
            raise SurveyDataError(
                f"{self.SURVEY}: cannot read {path}{source}: {type(error).__name__}: {error}; {advice}"
            ) from error

    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        """Download what the survey needs; the returned dict is passed to :meth:`_records`."""
        return {}

    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        """Yield raw records. Call ``keep(object_id)`` before parsing an object's photometry and skip it when False."""
        raise NotImplementedError

    def object_ids(self, sources: dict) -> Iterable[str] | None:
        """The ids of the objects :meth:`_records` will yield, when known before reading them (None otherwise):
        they give the preparation progress bars their totals."""
        return None

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        self._download_config = getattr(dl_manager, "download_config", None)
        sources = self._sources(dl_manager)
        self._reports: dict[str, dict] = {}
        generators = [
            datasets.SplitGenerator(name=name, gen_kwargs={"split": name, "sources": sources})
            for name, fraction in zip(SPLIT_NAMES, self.config.split_fractions)
            if fraction > 0
        ]
        ids = self.object_ids(sources)
        if ids is not None:  # the expected rows of each split: the total of its progress bar (then the real count)
            config = self.config
            counts = collections.Counter(hash_split(i, config.split_fractions, config.split_salt) for i in ids)
            for generator in generators:
                generator.split_info.num_examples = counts.get(generator.name, 0)
        return generators

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

    def _columns(self, record: dict) -> dict[str, np.ndarray]:
        """The record's sequence columns as float64 arrays of one length; else a ValueError naming the curve."""
        where = f"{self.SURVEY} object {record.get('object_id')!r} band {record.get('band')!r}"
        columns = {}
        for name in SEQUENCE_COLUMNS:
            if name not in record:
                if name in ("time", "mag", "mag_err"):
                    raise ValueError(f"{where}: no {name} values")
                continue
            try:
                raw = np.asarray(record[name])
                if raw.dtype.kind == "c":
                    raise TypeError(f"complex dtype {raw.dtype}")
                column = raw.astype(np.float64)
            except (ValueError, TypeError, OverflowError) as err:
                raise ValueError(f"{where}: {name} must hold real numbers ({type(err).__name__}: {err})") from None
            if column.ndim != 1:
                raise ValueError(f"{where}: {name} must hold one value per observation, got shape {column.shape}")
            columns[name] = column
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{where}: its columns differ in length {lengths}")
        return columns

    def _clean(self, record: dict, report: dict) -> dict | None:
        """Cleaned schema row of one record, or None when the curve is dropped; counts go into ``report``."""
        columns = self._columns(record)
        values = np.column_stack([columns[name] for name in ("time", "mag", "mag_err")])
        curves = RaggedCurves(values, np.array([0, len(values)], dtype=np.int64))
        rows, kept, _, outcome = select_clean_rows(
            curves, max_error=self.config.max_error, min_observations=self.config.min_observations
        )
        for name in REPORT_COUNTERS:
            report[name] += getattr(outcome, name)
        if len(kept) == 0:
            return None
        row = {key: value for key, value in record.items() if key not in SEQUENCE_COLUMNS}
        for name, column in columns.items():
            row[name] = column[rows]
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
