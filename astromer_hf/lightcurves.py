"""Light-curve inputs for Astromer: parsing, cleaning, windowing and per-window centring.

The steps reproduce the original Astromer input pipeline (``docs/architecture.md``, "Input"):

1. :func:`as_lightcurves` turns the user's container (arrays, dict of columns, long-format DataFrame)
   into a list of float64 ``(N, 3)`` arrays ``[time, mag, err]``.
2. :func:`clean_lightcurves` applies the cleaning rules of §1.1 and reports every change in a
   :class:`CleaningReport`; :func:`validate_lightcurves` is the strict alternative that changes nothing
   and raises on the first problem instead.
3. :func:`window_slices` decides which observations form each window (§1.2).
4. :func:`center_windows` gathers the ``[W, T]`` windows, subtracts the per-window means of time and
   magnitude (§1.3) and pads with zeros.

After parsing, every step works on one flat array holding all observations of all curves plus the curve
offsets (:class:`RaggedCurves`), so the whole batch costs a handful of NumPy calls, whatever the number
of curves. :func:`make_windows` chains the four steps.

Window strategies
-----------------
``"random"``
    Pretraining rule: one contiguous window per curve, start drawn uniformly from ``{0, ..., L - T}``
    (inclusive); curves with ``L <= T`` are used whole.
``"legacy"``
    The original inference rule: ``floor(L / T) + 1`` windows with starts ``0, T, 2T, ...`` clipped to
    ``[0, max(0, L - T)]``, each ``min(L, T)`` long. The last window overlaps the previous one, and when
    ``L`` is a multiple of ``T`` the last window is a duplicate. Kept as is for parity with the original.
``"tiling"`` (default for inference)
    Our choice: ``ceil(L / T)`` consecutive windows whose lengths differ by at most one. Every observation
    lands in exactly one window, so per-observation outputs map back to the curve without overlap or
    duplicates, and no window is a tiny tail with little context (``L = 201`` gives windows of 101 and 100
    observations, not 200 and 1). The price is that windows of long curves are usually shorter than ``T``
    and padded.

Centring modes
--------------
``"float64"`` (default)
    Means and subtraction in float64, result cast to float32: the centred values are the exact ones,
    rounded once.
``"legacy_float32"``
    What the original TensorFlow code did: cast the raw values to float32, take the mean as a sequential
    float32 sum divided by ``n``, subtract in float32. This rebuilds the reference windows bit for bit but
    loses precision for large times: MACHO MJDs (~5e4) are shifted by up to ~0.08 d, and times given as full
    Julian dates (~2.45e6) by up to ~0.9 d.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

WINDOW_STRATEGIES = ("tiling", "legacy", "random")
CENTERING_MODES = ("float64", "legacy_float32")
#: Curves shorter than this can never be windowed meaningfully (one point centres to all zeros).
MIN_CURVE_LENGTH = 2
#: The cleaning defaults, for every caller (processor, survey builders, data preparation): rows with an error not
#: below ``DEFAULT_MAX_ERROR`` magnitudes are dropped, then curves shorter than ``DEFAULT_MIN_OBSERVATIONS``.
DEFAULT_MAX_ERROR = 1.0
DEFAULT_MIN_OBSERVATIONS = 5
#: Rows with a value at least this large are dropped with the non-finite ones: the model computes in float32, and
#: values near its limit (3.4e38) overflow once centred. Real times (days, even full JD) and magnitudes are far below.
MAX_ABS_VALUE = 1e15

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("time", "mjd", "hjd", "bjd", "jd"),
    "mag": ("mag", "magnitude"),
    "err": ("err", "error", "errmag", "mag_err", "magerr", "err_mag", "mag_error", "e_mag"),
}
ID_ALIASES: tuple[str, ...] = ("object_id", "newid", "id", "oid")

SeedLike = int | np.random.Generator | None


# ----------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------


class ParsedLightCurves(NamedTuple):
    """Light curves as read from the user's container.

    ``curves``: list of float64 arrays of shape ``(N_i, 3)`` with columns ``[time, mag, err]``.
    ``ids``: object ids in the order of ``curves`` when the input carried them (DataFrame id column), else None.
    """

    curves: list[np.ndarray]
    ids: list[Hashable] | None


def as_lightcurves(obj: Any) -> ParsedLightCurves:
    """Read light curves from any supported container.

    Accepted inputs:

    * one array-like of shape ``(N, 3)`` (``[time, mag, err]``): one curve;
    * a list or tuple of such array-likes: one curve each;
    * a mapping of columns (``time``/``mag``/``err`` or aliases such as ``mjd``, ``magnitude``, ``errmag``,
      ``mag_err``) whose values are 1-D arrays (one curve) or lists of 1-D arrays (one curve each);
    * a long-format :class:`pandas.DataFrame` with those columns and optionally an object-id column
      (``object_id``, ``newID``, ``ID`` or ``oid``) grouping rows into curves in order of first appearance;
      without an id column the whole frame is one curve.

    Values are converted to float64 (a float64 input array is returned as is, not copied); nothing else is
    changed (no sorting or filtering).

    Raises:
        ValueError: on a wrong shape, a wrong number of columns, mismatched column lengths, a missing or
            ambiguous column, or non-numeric values; the message names the curve (or column) at fault.
        TypeError: if the container type is not supported.
    """
    if isinstance(obj, pd.DataFrame):
        parsed = _from_dataframe(obj)
    elif isinstance(obj, Mapping):
        parsed = ParsedLightCurves(_from_column_mapping(obj), None)
    elif isinstance(obj, (list, tuple)):
        parsed = ParsedLightCurves([_as_curve_array(curve, index) for index, curve in enumerate(obj)], None)
    elif hasattr(obj, "__array__"):
        array = np.asarray(obj)
        if array.ndim != 2:
            raise ValueError(
                f"a single light curve must be a 2-D array of shape (N, 3), got shape {array.shape}; "
                "pass several curves as a list of (N, 3) arrays"
            )
        parsed = ParsedLightCurves([_as_curve_array(array, 0)], None)
    else:
        raise TypeError(
            f"unsupported light-curve container {type(obj).__name__}: expected an (N, 3) array, a list of them, "
            "a dict of columns or a pandas DataFrame"
        )
    if not parsed.curves:
        raise ValueError("no light curves given")
    return parsed


def _as_curve_array(curve: Any, index: int) -> np.ndarray:
    """Check one curve and return it as a float64 array of shape ``(N, 3)``."""
    array = np.asarray(curve)
    if array.size == 0 and array.ndim == 1:
        return np.empty((0, 3), dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"curve {index}: expected a 2-D array of shape (N, 3) [time, mag, err], got shape {array.shape} "
            "(a list is read as a list of curves)"
        )
    if array.shape[1] != 3:
        raise ValueError(
            f"curve {index}: expected 3 columns [time, mag, err], got {array.shape[1]} (shape {array.shape})"
        )
    _require_numeric(array, f"curve {index}")
    return np.asarray(array, dtype=np.float64)


def _require_numeric(array: np.ndarray, where: str) -> None:
    """Raise ValueError unless ``array`` holds integers or floats."""
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{where}: values must be numeric, got dtype {array.dtype}")


def _resolve_columns(names: Sequence[Hashable]) -> dict[str, Hashable]:
    """Map the roles ``time``/``mag``/``err`` to the matching column names (case-insensitive aliases)."""
    resolved: dict[str, Hashable] = {}
    for role, aliases in COLUMN_ALIASES.items():
        found = _find_by_alias(names, aliases)
        if not found:
            raise ValueError(f"missing {role!r} column: expected one of {list(aliases)}, got columns {list(names)}")
        if len(found) > 1:
            raise ValueError(f"ambiguous {role!r} column: found {found}; keep only one")
        resolved[role] = found[0]
    return resolved


def _find_by_alias(names: Sequence[Hashable], aliases: Sequence[str]) -> list[Hashable]:
    """Column names equal (ignoring case and surrounding blanks) to one of ``aliases``."""
    return [name for name in names if str(name).strip().lower() in aliases]


def _from_column_mapping(columns: Mapping[Hashable, Any]) -> list[np.ndarray]:
    """Curves from a dict of columns: 1-D values make one curve, lists of 1-D arrays make one curve each."""
    resolved = _resolve_columns(list(columns))
    values = {role: columns[name] for role, name in resolved.items()}
    holds_many = {role: _is_list_of_arrays(value) for role, value in values.items()}
    if len(set(holds_many.values())) > 1:
        raise ValueError(
            "columns disagree: some hold one curve (1-D values) and some hold several (lists of arrays): "
            f"{holds_many}"
        )
    if not holds_many["time"]:
        return [_stack_columns(values["time"], values["mag"], values["err"], 0)]
    counts = {role: len(value) for role, value in values.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"columns hold different numbers of curves: {counts}")
    return [
        _stack_columns(time, mag, err, index)
        for index, (time, mag, err) in enumerate(zip(values["time"], values["mag"], values["err"]))
    ]


def _is_list_of_arrays(value: Any) -> bool:
    """True when a column value is a list/tuple of per-curve arrays rather than one 1-D column."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and np.ndim(value[0]) >= 1


def _stack_columns(time: Any, mag: Any, err: Any, index: int) -> np.ndarray:
    """Stack three 1-D columns of one curve into a float64 ``(N, 3)`` array."""
    columns = {"time": np.asarray(time), "mag": np.asarray(mag), "err": np.asarray(err)}
    for role, column in columns.items():
        if column.ndim != 1:
            raise ValueError(f"curve {index}: column {role!r} must be 1-D, got shape {column.shape}")
        if column.size:
            _require_numeric(column, f"curve {index}, column {role!r}")
    lengths = {role: column.shape[0] for role, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"curve {index}: columns have different lengths {lengths}")
    return np.column_stack([columns["time"], columns["mag"], columns["err"]]).astype(np.float64)


def _from_dataframe(frame: pd.DataFrame) -> ParsedLightCurves:
    """Curves from a long-format DataFrame, grouped by its object-id column when it has one."""
    resolved = _resolve_columns(list(frame.columns))
    for role, name in resolved.items():
        dtype = frame[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ValueError(f"column {name!r} ({role}) must be numeric, got dtype {dtype}")
    values = np.column_stack(
        [frame[resolved[role]].to_numpy(dtype=np.float64, na_value=np.nan) for role in COLUMN_ALIASES]
    )
    id_columns = _find_by_alias(list(frame.columns), ID_ALIASES)
    if not id_columns:
        return ParsedLightCurves([values], None)
    if len(id_columns) > 1:
        raise ValueError(f"ambiguous object-id column: found {id_columns}; keep only one")
    codes, uniques = pd.factorize(frame[id_columns[0]], sort=False)
    if (codes < 0).any():
        raise ValueError(f"column {id_columns[0]!r}: missing object id at row {int(np.flatnonzero(codes < 0)[0])}")
    order = np.argsort(codes, kind="stable")
    boundaries = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return ParsedLightCurves(np.split(values[order], boundaries), list(uniques))


# ----------------------------------------------------------------------------------------------------------
# Ragged storage
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaggedCurves:
    """All observations of C curves in one flat array.

    ``values``: float64 ``[N, 3]`` (``[time, mag, err]``), curve ``c`` being ``values[offsets[c]:offsets[c+1]]``.
    ``offsets``: int64 ``[C + 1]``, starting at 0.
    """

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_list(cls, curves: Sequence[np.ndarray]) -> RaggedCurves:
        """Concatenate ``(N_i, 3)`` arrays."""
        lengths = np.array([len(curve) for curve in curves], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = np.concatenate(curves, axis=0) if curves else np.empty((0, 3))
        return cls(values.astype(np.float64, copy=False), offsets)

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``[C]``: observations per curve."""
        return np.diff(self.offsets)

    @property
    def n_curves(self) -> int:
        return len(self.offsets) - 1

    def curve_of_row(self) -> np.ndarray:
        """int64 ``[N]``: the curve each observation belongs to."""
        return np.repeat(np.arange(self.n_curves, dtype=np.int64), self.lengths)

    def curve(self, index: int) -> np.ndarray:
        """The ``(N_i, 3)`` view of one curve."""
        return self.values[self.offsets[index] : self.offsets[index + 1]]


def _locate_row(curves: RaggedCurves, row: int) -> tuple[int, int]:
    """(curve index, row within that curve) of a flat row index."""
    curve = int(np.searchsorted(curves.offsets, row, side="right") - 1)
    return curve, int(row - curves.offsets[curve])


# ----------------------------------------------------------------------------------------------------------
# Cleaning
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleaningReport:
    """What :func:`clean_lightcurves` changed, rule by rule (rules apply in this order).

    Row counts of one rule only count rows still present when that rule ran.
    """

    curves_in: int
    curves_out: int
    observations_in: int
    observations_out: int
    nonfinite_rows: int = 0
    bad_error_rows: int = 0
    resorted_curves: int = 0
    duplicate_time_rows: int = 0
    short_curves: int = 0
    dropped_curves: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        """True when any rule dropped or reordered something."""
        return bool(
            self.nonfinite_rows
            or self.bad_error_rows
            or self.resorted_curves
            or self.duplicate_time_rows
            or self.short_curves
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (``dropped_curves`` as a list)."""
        result = asdict(self)
        result["dropped_curves"] = list(self.dropped_curves)
        return result

    def __str__(self) -> str:
        shown = ", ".join(str(index) for index in self.dropped_curves[:10])
        if len(self.dropped_curves) > 10:
            shown += f", ... ({len(self.dropped_curves)} in all)"
        return "\n".join(
            [
                f"Light-curve cleaning: {self.curves_in} -> {self.curves_out} curves, "
                f"{self.observations_in} -> {self.observations_out} observations",
                f"  rows with NaN/inf (or |value| >= 1e15):  {self.nonfinite_rows}",
                f"  rows with error outside (0, max_error):  {self.bad_error_rows}",
                f"  curves re-sorted by time:                {self.resorted_curves}",
                f"  duplicate-time rows dropped (keep last): {self.duplicate_time_rows}",
                f"  curves dropped as too short:             {self.short_curves}" + (f" [{shown}]" if shown else ""),
            ]
        )


def clean_lightcurves(
    curves: RaggedCurves, *, max_error: float | None = DEFAULT_MAX_ERROR, min_observations: int = DEFAULT_MIN_OBSERVATIONS
) -> tuple[RaggedCurves, np.ndarray, CleaningReport]:
    """Apply the cleaning rules of the original pipeline to all curves at once.

    Rules, in order:

    1. rows with NaN or inf in any column are dropped (and rows with a value of at least :data:`MAX_ABS_VALUE`);
    2. rows whose error is not in ``(0, max_error)`` are dropped (``max_error=None`` removes the upper
       bound only; non-positive errors are always dropped);
    3. curves whose times are not sorted are stable-sorted by time;
    4. rows repeating the time of another row of the same curve are dropped, keeping the last occurrence
       (as the original's ``drop_duplicates(keep='last')``);
    5. curves left with fewer than ``min_observations`` rows (empty and one-point curves included) are dropped.

    A warning with the report is logged whenever a rule fires.

    Args:
        curves: C input curves.
        max_error: exclusive upper bound on the error column, or None.
        min_observations: shortest curve kept (at least :data:`MIN_CURVE_LENGTH`).

    Returns:
        ``(cleaned, kept, report)``: the surviving curves, the int64 ``[C_out]`` input indices of those curves,
        and the :class:`CleaningReport`.

    Raises:
        ValueError: if no curve survives.
    """
    rows, kept, lengths, report = select_clean_rows(curves, max_error=max_error, min_observations=min_observations)
    values = curves.values
    unchanged = len(rows) == len(values) and report.resorted_curves == 0
    cleaned = RaggedCurves(
        values if unchanged else values[rows], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    )
    if report.curves_out == 0:
        raise ValueError(
            f"no light curve left after cleaning: {report.curves_in} curve(s) with {report.observations_in} "
            f"observation(s) in, none with at least {min_observations} valid observations out (rows need finite "
            f"values and an error in (0, {max_error})); what each rule removed:\n{report}"
        )
    if report.changed:
        logger.warning("%s", report)
    return cleaned, kept, report


def select_clean_rows(
    curves: RaggedCurves, *, max_error: float | None = DEFAULT_MAX_ERROR, min_observations: int = DEFAULT_MIN_OBSERVATIONS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, CleaningReport]:
    """The rows the cleaning rules of :func:`clean_lightcurves` keep, without gathering, logging or raising.

    Use it to apply the same selection to columns other than ``[time, mag, err]`` (fluxes, flags).

    Returns:
        ``(rows, kept, lengths, report)``: int64 indices into ``curves.values`` of the surviving rows, curve by
        curve and time-sorted; the int64 ``[C_out]`` input indices of the surviving curves; their int64 lengths;
        and the :class:`CleaningReport`.
    """
    values = curves.values
    with np.errstate(invalid="ignore"):
        finite = (np.abs(values) < MAX_ABS_VALUE).all(axis=1)  # False for NaN and inf as well
    error = values[:, 2]
    good_error = error > 0 if max_error is None else (error > 0) & (error < max_error)
    # Work on row indices and 1-D columns; the [N, 3] values are gathered once by the caller.
    keep = finite & good_error
    rows = np.flatnonzero(keep)
    owner = np.repeat(np.arange(curves.n_curves, dtype=np.int64), _count_per_curve(keep, curves.offsets))
    time = values[rows, 0]

    order, n_resorted = _stable_time_order(time, owner)
    rows, owner, time = rows[order], owner[order], time[order]

    is_duplicate = _duplicate_time_rows(time, owner)
    rows, owner = rows[~is_duplicate], owner[~is_duplicate]

    lengths = np.bincount(owner, minlength=curves.n_curves)
    is_short = lengths < min_observations
    rows = rows[~is_short[owner]]
    kept = np.flatnonzero(~is_short).astype(np.int64)
    report = CleaningReport(
        curves_in=curves.n_curves,
        curves_out=len(kept),
        observations_in=len(values),
        observations_out=len(rows),
        nonfinite_rows=int((~finite).sum()),
        bad_error_rows=int((finite & ~good_error).sum()),
        resorted_curves=n_resorted,
        duplicate_time_rows=int(is_duplicate.sum()),
        short_curves=int(is_short.sum()),
        dropped_curves=tuple(np.flatnonzero(is_short).tolist()),
    )
    return rows.astype(np.int64), kept, lengths[kept].astype(np.int64), report


def _count_per_curve(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """int64 ``[C]``: number of True ``flags`` (bool ``[N]``) in each curve."""
    running = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return np.diff(running[offsets])


def _stable_time_order(time: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray | slice, int]:
    """Permutation that stable-sorts each curve's rows by time, and how many curves were out of order.

    ``time``: float64 ``[N]``; ``owner``: int64 ``[N]``, the non-decreasing curve index of each row.
    Returns ``slice(None)`` (no reordering) when every curve is already sorted.
    """
    descending = (time[1:] < time[:-1]) & (owner[1:] == owner[:-1])
    n_resorted = len(np.unique(owner[1:][descending]))
    if n_resorted == 0:
        return slice(None), 0
    return np.lexsort((time, owner)), n_resorted


def _duplicate_time_rows(time: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """bool ``[N]``: rows followed by a row of the same curve with the same time (so the last one is kept).

    Rows must be sorted by time within each curve.
    """
    if len(time) == 0:
        return np.zeros(0, dtype=bool)
    same_as_next = (time[:-1] == time[1:]) & (owner[:-1] == owner[1:])
    return np.append(same_as_next, False)


def validate_lightcurves(curves: RaggedCurves) -> None:
    """Strict check used when cleaning is disabled: raise on the first problem, change nothing.

    Every curve needs at least :data:`MIN_CURVE_LENGTH` rows, finite values, positive errors and strictly
    increasing times. The upper bound ``max_error`` is a cleaning rule and is not checked here.

    Raises:
        ValueError: naming the curve and, for row problems, the first offending row.
    """
    values = curves.values
    row_problems = [
        (~np.isfinite(values).all(axis=1), "non-finite value (NaN or inf)"),
        (~(values[:, 2] > 0), "non-positive error"),
        (
            _time_not_increasing(values[:, 0], curves.curve_of_row()),
            "time not strictly increasing (unsorted or duplicate time)",
        ),
    ]
    for is_bad, problem in row_problems:
        if is_bad.any():
            curve, row = _locate_row(curves, int(np.flatnonzero(is_bad)[0]))
            raise ValueError(
                f"curve {curve}, row {row}: {problem}: [time, mag, err] = {curves.curve(curve)[row].tolist()}; "
                "pass clean=True to drop or sort such rows"
            )
    too_short = np.flatnonzero(curves.lengths < MIN_CURVE_LENGTH)
    if too_short.size:
        curve = int(too_short[0])
        raise ValueError(
            f"curve {curve} has {int(curves.lengths[curve])} observation(s); at least {MIN_CURVE_LENGTH} are needed "
            "(pass clean=True to drop short curves)"
        )


def _time_not_increasing(time: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """bool ``[N]``: rows whose time is not greater than the previous row of the same curve."""
    bad = (time[1:] <= time[:-1]) & (owner[1:] == owner[:-1])
    return np.insert(bad, 0, False)


# ----------------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowSlices:
    """Which observations form each of W windows: ``curve[start : start + length]`` of ``curve_index``.

    All three fields are int64 ``[W]``, ordered by curve, then by position within the curve.
    """

    curve_index: np.ndarray
    start: np.ndarray
    length: np.ndarray


def window_slices(
    lengths: np.ndarray, window_size: int, strategy: str = "tiling", rng: SeedLike = None
) -> WindowSlices:
    """Cut curves of the given lengths into windows of at most ``window_size`` observations.

    Args:
        lengths: int ``[C]`` curve lengths, each at least 1.
        window_size: T, the longest window.
        strategy: ``"tiling"``, ``"legacy"`` or ``"random"`` (see the module docstring).
        rng: seed or :class:`numpy.random.Generator`, used by ``"random"`` only.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if window_size < 1:
        raise ValueError(f"window_size must be at least 1, got {window_size}")
    if (lengths < 1).any():
        raise ValueError(f"every curve needs at least one observation, got lengths {lengths[lengths < 1][:5].tolist()}")
    if strategy == "tiling":
        return _tiling_slices(lengths, window_size)
    if strategy == "legacy":
        return _legacy_slices(lengths, window_size)
    if strategy == "random":
        return _random_slices(lengths, window_size, np.random.default_rng(rng))
    raise ValueError(f"unknown window strategy {strategy!r}; expected one of {WINDOW_STRATEGIES}")


def _rank_within_group(counts: np.ndarray) -> np.ndarray:
    """int64 ``[sum(counts)]``: ``0..counts[g]-1`` for each group g, concatenated."""
    group_starts = np.cumsum(counts) - counts
    return np.arange(counts.sum(), dtype=np.int64) - np.repeat(group_starts, counts)


def _random_slices(lengths: np.ndarray, window_size: int, rng: np.random.Generator) -> WindowSlices:
    """One window per curve, start uniform on ``{0, ..., max(0, L - T)}``."""
    last_start = np.maximum(lengths - window_size, 0)
    start = rng.integers(0, last_start + 1, dtype=np.int64)
    return WindowSlices(np.arange(len(lengths), dtype=np.int64), start, np.minimum(lengths, window_size))


def _legacy_slices(lengths: np.ndarray, window_size: int) -> WindowSlices:
    """``floor(L / T) + 1`` windows per curve, starts ``k * T`` clipped to ``[0, max(0, L - T)]``."""
    counts = lengths // window_size + 1
    curve_index = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    curve_length = lengths[curve_index]
    start = np.minimum(_rank_within_group(counts) * window_size, np.maximum(curve_length - window_size, 0))
    return WindowSlices(curve_index, start, np.minimum(curve_length, window_size))


def _tiling_slices(lengths: np.ndarray, window_size: int) -> WindowSlices:
    """``ceil(L / T)`` consecutive windows per curve with lengths as equal as possible (longer ones first)."""
    counts = -(-lengths // window_size)
    curve_index = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    base = np.repeat(lengths // counts, counts)
    n_longer = np.repeat(lengths % counts, counts)
    rank = _rank_within_group(counts)
    start = rank * base + np.minimum(rank, n_longer)
    return WindowSlices(curve_index, start, base + (rank < n_longer))


# ----------------------------------------------------------------------------------------------------------
# Centring
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CenteredWindows:
    """W windows of T positions, right-padded.

    ``times``, ``magnitudes``: float32 ``[W, T]``, centred per window, 0 at padding.
    ``errors``: float32 ``[W, T]``, raw (not centred), 0 at padding.
    ``attention_mask``: int64 ``[W, T]``, 1 at real observations, 0 at padding.
    ``time_offset``, ``magnitude_offset``: float64 ``[W]``, the subtracted means (add them back to un-centre).
    """

    times: np.ndarray
    magnitudes: np.ndarray
    errors: np.ndarray
    attention_mask: np.ndarray
    time_offset: np.ndarray
    magnitude_offset: np.ndarray


def center_windows(
    curves: RaggedCurves, slices: WindowSlices, window_size: int, centering: str = "float64"
) -> CenteredWindows:
    """Gather the windows into ``[W, T]`` arrays and subtract each window's mean time and magnitude.

    Args:
        curves: the curves that ``slices.curve_index`` refers to.
        slices: the W windows; every length must be in ``[1, window_size]``.
        window_size: T, the padded width.
        centering: ``"float64"`` or ``"legacy_float32"`` (see the module docstring).
    """
    if centering not in CENTERING_MODES:
        raise ValueError(f"unknown centering {centering!r}; expected one of {CENTERING_MODES}")
    position = np.arange(window_size, dtype=np.int64)
    is_real = position < slices.length[:, None]
    rows = np.where(is_real, curves.offsets[slices.curve_index, None] + slices.start[:, None] + position, 0)
    center = _center_float64 if centering == "float64" else _center_legacy_float32
    times, time_offset = center(_gather_padded(curves.values[:, 0], rows, is_real), is_real, slices.length)
    magnitudes, magnitude_offset = center(_gather_padded(curves.values[:, 1], rows, is_real), is_real, slices.length)
    return CenteredWindows(
        times=times,
        magnitudes=magnitudes,
        errors=_gather_padded(curves.values[:, 2], rows, is_real).astype(np.float32),
        attention_mask=is_real.astype(np.int64),
        time_offset=time_offset,
        magnitude_offset=magnitude_offset,
    )


def _gather_padded(column: np.ndarray, rows: np.ndarray, is_real: np.ndarray) -> np.ndarray:
    """float64 ``[W, T]``: ``column[rows]`` with zeros where ``is_real`` is False."""
    gathered = column[rows]
    gathered[~is_real] = 0.0
    return gathered


def _center_float64(values: np.ndarray, is_real: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact centring of zero-padded float64 ``[W, T]`` values -> (float32 ``[W, T]``, float64 means ``[W]``)."""
    means = values.sum(axis=1) / length
    centred = values - means[:, None]
    centred[~is_real] = 0.0
    return centred.astype(np.float32), means


def _center_legacy_float32(
    values: np.ndarray, is_real: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The original TensorFlow centring, bit for bit.

    Cast to float32 first; the mean is the sequential float32 running sum at the last real position divided
    by n in float32 (``np.cumsum`` accumulates sequentially, unlike the pairwise ``np.sum``); subtract in
    float32. Zero-padded float64 ``[W, T]`` values -> (float32 ``[W, T]``, float32 means as float64 ``[W]``).
    """
    values32 = values.astype(np.float32)
    running_sum = np.cumsum(values32, axis=1, dtype=np.float32)
    means32 = running_sum[np.arange(len(length)), length - 1] / length.astype(np.float32)
    centred = values32 - means32[:, None]
    centred[~is_real] = 0.0
    return centred, means32.astype(np.float64)


# ----------------------------------------------------------------------------------------------------------
# Whole pipeline
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightCurveWindows:
    """Result of :func:`make_windows`.

    ``slices.curve_index`` indexes the caller's input curves (dropped curves never appear).
    ``ids`` are the input's object ids when it had them (DataFrame id column), indexed the same way.
    """

    slices: WindowSlices
    centred: CenteredWindows
    report: CleaningReport
    ids: list[Hashable] | None


def make_windows(
    lightcurves: Any,
    *,
    window_size: int,
    strategy: str = "tiling",
    centering: str = "float64",
    clean: bool = True,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
    max_error: float | None = DEFAULT_MAX_ERROR,
    rng: SeedLike = None,
    padding: str = "max_length",
) -> LightCurveWindows:
    """Parse, clean (or validate), window and centre light curves in one call.

    With ``clean=False`` the curves are checked by :func:`validate_lightcurves` and the report shows no change.
    ``padding="max_length"`` pads every window to ``window_size`` positions, ``"longest"`` to the longest window.
    """
    parsed = as_lightcurves(lightcurves)
    curves = RaggedCurves.from_list(parsed.curves)
    if clean:
        curves, kept, report = clean_lightcurves(curves, max_error=max_error, min_observations=min_observations)
    else:
        validate_lightcurves(curves)
        kept = np.arange(curves.n_curves, dtype=np.int64)
        report = CleaningReport(curves.n_curves, curves.n_curves, len(curves.values), len(curves.values))
    slices = window_slices(curves.lengths, window_size, strategy, rng)
    if padding not in ("max_length", "longest"):
        raise ValueError(f"padding must be 'max_length' or 'longest', got {padding!r}")
    width = window_size if padding == "max_length" else int(slices.length.max())
    windows = center_windows(curves, slices, width, centering)
    user_slices = WindowSlices(kept[slices.curve_index], slices.start, slices.length)
    return LightCurveWindows(user_slices, windows, report, parsed.ids)
