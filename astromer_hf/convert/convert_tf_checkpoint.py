"""Convert an original TensorFlow Astromer checkpoint (Astromer 1 or 2) into a ``save_pretrained`` folder.

Accepted sources: a released zip (e.g. ``macho_a0.zip``, ``pt_macho_v2_2025.zip``) or a checkpoint folder. The
folder holds the configuration (``conf.json`` for Astromer 1, ``config.toml`` for Astromer 2) and the weights as a
TensorFlow tensor bundle (``weights.index`` + ``weights.data-*``) or a Keras ``.h5`` file. Nothing here needs
TensorFlow: :mod:`astromer_hf.convert.tf_bundle` and :mod:`astromer_hf.convert.keras_h5` parse the files.

Checkpoints are treated as untrusted input. Only the members a conversion needs are read from a zip, straight from the
archive (a ``.h5`` member is copied to a temporary file first, as HDF5 needs one), each within a size limit; the
configuration is checked field by field against :data:`CONFIG_LIMITS` and :data:`MAX_PARAMETERS`; the weights are
matched to the model by name and shape from the index alone, then only those tensors are read, their declared byte
ranges checked against the real size of the data file. Weights that are not float32 are cast (a
:class:`ConversionNote` names each one), NaN and infinities are refused.

The output folder holds ``config.json`` + ``model.safetensors`` of :class:`AstromerForMaskedReconstruction`, the
``preprocessor_config.json`` of a matching :class:`AstromerProcessor`, a ``README.md`` model card recording the
source file and its sha256, and :data:`CONVERSION_RECORD`, the list of files written. It is written to a temporary
sibling folder and renamed when complete. An output folder that equals or contains the source is refused; a file is
never replaced; an existing folder is replaced only with ``overwrite``, and then deleted only if it holds nothing but
what an earlier conversion wrote (otherwise it is kept beside the new one as ``<name>.previous``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import torch

from ..configuration_astromer import AstromerConfig
from ..hashing import file_digest
from .keras_h5 import list_keras_h5, read_keras_h5
from .tf_bundle import MAX_INDEX_BYTES, BundleIndex, ShardOpener, parse_index, read_bundle
from .weight_mapping import check_dtypes, plan_mapping, to_parameter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

A1_CONFIG_NAME = "conf.json"
A2_CONFIG_NAME = "config.toml"
#: The largest configuration file read (the released ones are under 1 kB).
MAX_CONFIG_BYTES = 1 << 20
#: Accepted ranges of the architecture fields of a configuration, checked before anything is built.
CONFIG_LIMITS = {
    "hidden_size": (2, 16_384),
    "head_dim": (1, 16_384),
    "num_hidden_layers": (1, 128),
    "num_attention_heads": (1, 256),
    "intermediate_size": (1, 65_536),
    "window_size": (1, 100_000),
}
#: The largest model a conversion builds (the released Astromer models have 661,505 and 3,953,410 parameters).
MAX_PARAMETERS = 250_000_000
#: Bytes per parameter a weight file may have beyond a fixed 64 MiB (room for optimizer slots and float64 copies).
_WEIGHT_BYTES_PER_PARAMETER = 64
#: The file, in every converted folder, listing what the conversion wrote (``{"files": {name: size}}``).
CONVERSION_RECORD = ".astromer-convert.json"


class ConversionNote(UserWarning):
    """Something a conversion did that its user should know: a dtype cast, an old output folder kept aside."""


@dataclass
class OriginalCheckpoint:
    """A located original checkpoint: where it is, its configuration and weights, and its generation.

    ``config_name`` and ``weights_name`` are ``/``-separated paths relative to ``source`` (a folder or a zip);
    ``weights_name`` is a tensor-bundle prefix (``.../weights``) or an ``.h5`` file.
    """

    source: Path
    config_name: str
    weights_name: str
    generation: str  # "astromer-1" or "astromer-2"
    raw_config: dict
    config_label: str  # the configuration file, as error messages name it

    @property
    def is_h5(self) -> bool:
        return self.weights_name.endswith(".h5")


# ---------------------------------------------------------------------------------------------------------- sources


class _CheckpointFiles:
    """The files of a checkpoint folder or of a zip archive, listed and read without extracting anything."""

    def __init__(self, source: Path, archive: zipfile.ZipFile | None) -> None:
        self.source, self.archive = source, archive
        self.sizes: dict[str, int] = {}
        self._members: dict[str, zipfile.ZipInfo] = {}
        if archive is None:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    self.sizes[path.relative_to(source).as_posix()] = path.stat().st_size
            return
        for info in archive.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(
                    f"Refusing archive member {info.filename!r} of {source}: it points outside the extraction folder "
                    "(an absolute path or '..'), which no release archive does."
                )
            if not info.is_dir():
                self.sizes[name.as_posix()] = info.file_size  # as declared: checked again while reading
                self._members[name.as_posix()] = info

    def label(self, name: str) -> str:
        return f"{self.source}:{name}" if self.archive is not None else str(self.source / name)

    @contextlib.contextmanager
    def _open(self, name: str) -> Iterator[BinaryIO]:
        if self.archive is None:
            with open(self.source / name, "rb") as handle:
                yield handle
            return
        with _archive_errors(self.label(name)), self.archive.open(self._members[name]) as handle:
            yield handle

    def read(self, name: str, limit: int, what: str) -> bytes:
        """The bytes of ``name``, refused if it declares or holds more than ``limit``."""
        if self.sizes[name] > limit:
            raise ValueError(f"{self.label(name)}: {self.sizes[name]:,} bytes, more than the {limit:,} a {what} may have")
        with self._open(name) as handle, _archive_errors(self.label(name)):
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{self.label(name)}: more than the {limit:,} bytes a {what} may have")
        return data

    def check_weight_size(self, name: str, limit: int, n_parameters: int) -> None:
        if self.sizes[name] > limit:
            raise ValueError(
                f"{self.label(name)}: {self.sizes[name]:,} bytes, more than a checkpoint of {n_parameters:,} parameters "
                f"can need (at most {limit:,} bytes are accepted); it is not the weight file of this configuration"
            )

    def shard_opener(self, folder: str, limit: int, n_parameters: int) -> ShardOpener:
        def open_shard(shard: str) -> tuple[str, int, Callable[[], AbstractContextManager[BinaryIO]]]:
            name = f"{folder}/{shard}" if folder else shard
            if name not in self.sizes:
                raise FileNotFoundError(f"tensor-bundle data shard not found: {self.label(name)}")
            self.check_weight_size(name, limit, n_parameters)
            return self.label(name), self.sizes[name], lambda: self._open(name)

        return open_shard

    def local_file(self, name: str, scratch: Path, limit: int) -> Path:
        """A path to ``name`` on disk: the file itself, or a copy of the archive member (at most ``limit`` bytes)."""
        if self.archive is None:
            return self.source / name
        target = scratch / PurePosixPath(name).name
        copied = 0
        with self._open(name) as handle, open(target, "wb") as out, _archive_errors(self.label(name)):
            while block := handle.read(1 << 20):
                copied += len(block)
                if copied > limit:
                    raise ValueError(f"{self.label(name)}: holds more than the {limit:,} bytes it may have")
                out.write(block)
        return target


@contextlib.contextmanager
def _archive_errors(label: str) -> Iterator[None]:
    """Damaged or unsupported zip members become a ValueError naming the member."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise ValueError(f"{label}: damaged or unsupported archive member: {error}") from None
    except RuntimeError as error:  # zipfile's "password required" for encrypted members
        raise ValueError(f"{label}: cannot be read from the archive: {error}") from None


@contextlib.contextmanager
def _open_source(source: Path) -> Iterator[_CheckpointFiles]:
    if source.is_dir():
        yield _CheckpointFiles(source, None)
        return
    if not zipfile.is_zipfile(source):
        raise ValueError(f"{source} is neither a folder nor a zip archive.")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{source}: damaged zip archive: {error}") from None
    with archive:
        yield _CheckpointFiles(source, archive)


# ---------------------------------------------------------------------------------------------------- configuration


def _parent(name: str) -> str:
    """The folder part of a ``/``-separated relative name ("" at the top)."""
    return name.rpartition("/")[0]


def _flatten(table: dict) -> dict:
    """Merge nested TOML tables into one flat dict (Astromer 2 configs are flat, but sections are tolerated)."""
    flat = {}
    for key, value in table.items():
        flat.update(_flatten(value) if isinstance(value, dict) else {key: value})
    return flat


_MISSING = object()


class _Fields:
    """Typed, range-checked access to the fields of an original configuration; errors name the file and field."""

    def __init__(self, conf: dict, label: str) -> None:
        self.conf, self.label = conf, label

    def _get(self, key: str, default):
        value = self.conf.get(key, default)
        if value is _MISSING:
            raise ValueError(f"{self.label} lacks the field '{key}'.")
        return value

    def integer(self, key: str, limit: str, default=_MISSING) -> int:
        value = self._get(key, default)
        low, high = CONFIG_LIMITS[limit]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ValueError(f"{self.label}: '{key}' must be a whole number, got {value!r}.")
        if not low <= value <= high:
            raise ValueError(f"{self.label}: '{key}' is {value:g}, outside the accepted range [{low}, {high}].")
        return int(value)

    def fraction(self, key: str, default) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{self.label}: '{key}' must be a number between 0 and 1, got {value!r}.")
        return float(value)

    def number(self, key: str, default) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"{self.label}: '{key}' must be a number, got {value!r}.")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if value not in (True, False):  # also accepts 0 and 1
            raise ValueError(f"{self.label}: '{key}' must be true or false, got {value!r}.")
        return bool(value)

    def text(self, key: str, default: str) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"{self.label}: '{key}' must be a string, got {value!r}.")
        return value


def _config_from_astromer1(conf: _Fields) -> AstromerConfig:
    """``conf.json`` of Astromer 1. Its ``head_dim`` is the model width; its ``base`` is never used by the code."""
    if conf.flag("use_leak", False):
        raise ValueError(
            f"{conf.label} sets `use_leak: true`; only the released Astromer 1 layout without residuals is supported."
        )
    return AstromerConfig.from_preset(
        "astromer-1",
        hidden_size=conf.integer("head_dim", "hidden_size"),
        num_hidden_layers=conf.integer("layers", "num_hidden_layers"),
        num_attention_heads=conf.integer("heads", "num_attention_heads"),
        intermediate_size=conf.integer("dff", "intermediate_size"),
        hidden_dropout_prob=conf.fraction("dropout", 0.1),
        window_size=conf.integer("max_obs", "window_size", 200),
        mask_probed_fraction=conf.fraction("msk_frac", 0.5),
        mask_random_fraction=conf.fraction("rnd_frac", 0.2),
        mask_same_fraction=conf.fraction("same_frac", 0.2),
    )


def _config_from_astromer2(conf: _Fields) -> AstromerConfig:
    """``config.toml`` of Astromer 2 (``get_ASTROMER`` arguments). ``head_dim`` is per head; ``pe_base``/``pe_exp``
    are never used by the code (the encoding always uses base 10000)."""
    heads = conf.integer("num_heads", "num_attention_heads")
    hidden_size = heads * conf.integer("head_dim", "head_dim")
    low, high = CONFIG_LIMITS["hidden_size"]
    if not low <= hidden_size <= high:
        raise ValueError(f"{conf.label}: num_heads x head_dim is {hidden_size}, outside the accepted range [{low}, {high}].")
    m_alpha = conf.number("m_alpha", -1e9)
    mask_format = conf.text("mask_format", "K")
    temperature = conf.number("temperature", 0)
    if temperature != 0:
        raise ValueError(f"{conf.label} sets temperature={temperature}; only temperature 0 is supported.")
    loss_format = conf.text("loss_format", "rmse")
    if loss_format != "rmse":
        raise ValueError(f"{conf.label} sets loss_format={loss_format!r}; only 'rmse' is supported.")
    if m_alpha == 1 or conf.text("arch", "base") == "zero":
        mask_style = "additive_one"  # the legacy "zero" architecture reproduces Astromer 1's +1 mask
    elif mask_format == "K" and m_alpha < 0:
        mask_style = "key"
    else:
        raise ValueError(
            f"{conf.label} sets mask_format={mask_format!r}, m_alpha={m_alpha}; supported are 'K' with a large "
            "negative m_alpha (Astromer 2) and m_alpha=1 (the Astromer 1 '+1' mask)."
        )
    random_fraction = conf.fraction("rs", 0.2)
    return AstromerConfig.from_preset(
        "astromer-2",
        hidden_size=hidden_size,
        num_hidden_layers=conf.integer("num_layers", "num_hidden_layers"),
        num_attention_heads=heads,
        intermediate_size=conf.integer("mixer_size", "intermediate_size"),
        hidden_dropout_prob=conf.fraction("dropout", 0.1),
        window_size=conf.integer("window_size", "window_size", 200),
        residual_style="projected" if conf.flag("use_leak", True) else "none",
        attention_mask_style=mask_style,
        use_mask_token=not conf.flag("no_msk_token", False),
        mask_probed_fraction=conf.fraction("probed", 0.5),
        mask_random_fraction=random_fraction,
        mask_same_fraction=conf.fraction("same", random_fraction),
        loss_weighting="inverse_error" if conf.flag("correct_loss", False) else "none",
    )


def config_from_original(checkpoint: OriginalCheckpoint) -> AstromerConfig:
    """Translate the original configuration into an :class:`AstromerConfig`, every field checked first (type, and
    :data:`CONFIG_LIMITS`); errors name the file and the field."""
    from huggingface_hub.errors import StrictDataclassError

    fields = _Fields(checkpoint.raw_config, checkpoint.config_label)
    translate = _config_from_astromer1 if checkpoint.generation == "astromer-1" else _config_from_astromer2
    try:
        return translate(fields)
    except ValueError as error:
        if str(error).startswith(checkpoint.config_label):
            raise
        raise ValueError(f"{checkpoint.config_label}: {error}") from None
    except StrictDataclassError as error:  # AstromerConfig's own consistency checks
        cause = error.__cause__ or error
        raise ValueError(f"{checkpoint.config_label}: {cause}") from None


def _parse_config(files: _CheckpointFiles, name: str) -> tuple[str, dict]:
    label = files.label(name)
    data = files.read(name, MAX_CONFIG_BYTES, "configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{label} is not UTF-8 text, so not an Astromer configuration.") from None
    if name.endswith(A1_CONFIG_NAME):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{label} is not valid JSON: {error}.") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{label} must hold a JSON object of settings, not a {type(raw).__name__}.")
        return "astromer-1", raw
    try:
        return "astromer-2", _flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{label} is not valid TOML: {error}.") from None


def locate_checkpoint(files: _CheckpointFiles) -> OriginalCheckpoint:
    """Find the configuration and weights among the files of a folder or archive (searched recursively)."""
    by_folder: dict[str, list[str]] = {}
    for name in files.sizes:
        by_folder.setdefault(_parent(name), []).append(name.rpartition("/")[2])

    def has_weights(folder: str) -> bool:
        return any(n.endswith((".index", ".h5")) for n in by_folder[folder])

    # A2 pipelines keep copies of config.toml next to data splits; the checkpoint's is the one beside weights.
    configs = sorted(
        (f"{folder}/{n}" if folder else n)
        for config_name in (A1_CONFIG_NAME, A2_CONFIG_NAME)
        for folder, names in by_folder.items()
        for n in names
        if n == config_name and has_weights(folder)
    )
    if len(configs) != 1:
        raise ValueError(
            f"Expected exactly one checkpoint (a {A1_CONFIG_NAME} or {A2_CONFIG_NAME} beside a weights.index or .h5 "
            f"file) under {files.source}; found {', '.join(configs) or 'none'}."
        )
    config_name = configs[0]
    folder = _parent(config_name)
    indexes = sorted(n for n in by_folder[folder] if n.endswith(".index"))
    h5_files = sorted(n for n in by_folder[folder] if n.endswith(".h5"))
    if len(indexes) > 1 or (not indexes and len(h5_files) > 1):
        raise ValueError(f"Several weight files in {files.label(folder)}: {', '.join(indexes or h5_files)}; keep one.")
    weights = indexes[0].removesuffix(".index") if indexes else h5_files[0]
    generation, raw = _parse_config(files, config_name)
    return OriginalCheckpoint(
        source=files.source,
        config_name=config_name,
        weights_name=f"{folder}/{weights}" if folder else weights,
        generation=generation,
        raw_config=raw,
        config_label=files.label(config_name),
    )


def _checkpoint_files(files: _CheckpointFiles, checkpoint: OriginalCheckpoint) -> list[str]:
    if checkpoint.is_h5:
        return [checkpoint.config_name, checkpoint.weights_name]
    prefix = checkpoint.weights_name
    shards = sorted(n for n in files.sizes if n.startswith(prefix + ".data-"))
    return [checkpoint.config_name, prefix + ".index", *shards]


# ----------------------------------------------------------------------------------------------------------- weights


def _expected_parameters(config: AstromerConfig, label: str) -> tuple[dict[str, torch.Size], int]:
    """Parameter shapes and count of the model ``config`` describes, from a skeleton that allocates no memory."""
    with torch.device("meta"):
        skeleton = _model_class()(config)
    n_parameters = sum(p.numel() for p in skeleton.parameters())
    if n_parameters > MAX_PARAMETERS:
        raise ValueError(
            f"{label} describes a model of {n_parameters:,} parameters, more than the {MAX_PARAMETERS:,} a conversion "
            f"accepts (the released Astromer models have 661,505 and 3,953,410): {config.num_hidden_layers} layers, "
            f"width {config.hidden_size}, feed-forward {config.intermediate_size}."
        )
    return {name: tensor.shape for name, tensor in skeleton.state_dict().items()}, n_parameters


def _model_class():
    from .. import AstromerForMaskedReconstruction  # through the package root, which registers the Auto classes

    return AstromerForMaskedReconstruction


def _read_weights(
    files: _CheckpointFiles, checkpoint: OriginalCheckpoint, config: AstromerConfig, scratch: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The model's state dict from the checkpoint, and a note per cast tensor (see the module docstring)."""
    expected, n_parameters = _expected_parameters(config, checkpoint.config_label)
    weight_limit = (64 << 20) + _WEIGHT_BYTES_PER_PARAMETER * n_parameters
    index: BundleIndex | None = None
    if checkpoint.is_h5:
        files.check_weight_size(checkpoint.weights_name, weight_limit, n_parameters)
        h5_path = files.local_file(checkpoint.weights_name, scratch, weight_limit)
        listing = list_keras_h5(h5_path)
    else:
        index_name = checkpoint.weights_name + ".index"
        index = parse_index(
            files.read(index_name, MAX_INDEX_BYTES, "tensor-bundle index"),
            files.label(index_name),
            Path(checkpoint.weights_name),
        )
        listing = {name: info for name, info in index.tensors().items() if info.dtype != object}
    plan, _ = plan_mapping(
        {name: info.shape for name, info in listing.items()}, expected, config.hidden_size, config.intermediate_size
    )
    check_dtypes({name: listing[name].dtype for name in plan})
    if index is None:
        arrays = read_keras_h5(h5_path, names=list(plan))
    else:
        folder = _parent(checkpoint.weights_name)
        arrays = read_bundle(index, files.shard_opener(folder, weight_limit, n_parameters), names=list(plan))
    state, notes = {}, []
    for raw_name, target in plan.items():
        state[target], note = to_parameter(raw_name, arrays.pop(raw_name), target)
        if note:
            notes.append(note)
    return state, notes


# ------------------------------------------------------------------------------------------------------------ output


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (:func:`astromer_hf.hashing.file_digest`)."""
    return file_digest(path, "sha256")


def render_model_card(
    config: AstromerConfig,
    checkpoint: OriginalCheckpoint,
    source: Path,
    source_sha256: dict[str, str],
    n_params: int,
    casts: Sequence[str] = (),
) -> str:
    """The README.md written beside a converted model: provenance (source files, their sha256, the original
    configuration, any dtype casts), architecture, how to load it (see
    :func:`astromer_hf.model_card.render_model_card`)."""
    from .. import __version__
    from ..model_card import render_model_card as render_card

    checksums = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in source_sha256.items())
    original_config = json.dumps(checkpoint.raw_config, indent=2, sort_keys=True, default=str)
    generation = "Astromer 1" if checkpoint.generation == "astromer-1" else "Astromer 2"
    values = (
        "The tensors are the original float32 values"
        if not casts
        else "The tensors are the original values, cast to float32 where they were stored otherwise ("
        + "; ".join(f"`{note}`" for note in casts)
        + ")"
    )
    provenance = (
        f"Weights of the original TensorFlow Astromer checkpoint `{source.name}`, converted to PyTorch with "
        f"`astromer convert` (astromer_hf {__version__}). {values}, renamed and "
        "with Keras `[in, out]` kernels transposed; nothing was retrained.\n\n"
        f"| file | sha256 |\n|---|---|\n{checksums}\n\n"
        f"Original configuration (`{PurePosixPath(checkpoint.config_name).name}`):\n\n```json\n{original_config}\n```"
    )
    card = render_card(
        config,
        title=f"{source.stem} — {generation} (converted)",
        description=f"The {generation} checkpoint `{source.name}` released by the Astromer authors, in "
        "Hugging Face form.",
        n_parameters=n_params,
        provenance=provenance,
        extra_tags=("converted-from-tensorflow",),
    )
    return str(card)


def _check_output(source: Path, output_dir: Path, overwrite: bool) -> None:
    """Refuse outputs that would replace the source, a file, or (without ``overwrite``) an existing folder."""
    resolved_source, resolved_out = source.resolve(), output_dir.resolve()
    if resolved_out == resolved_source or resolved_out in resolved_source.parents:
        relation = "is" if resolved_out == resolved_source else "contains"
        raise ValueError(
            f"Refusing to write the converted model to {output_dir}: it {relation} the checkpoint {source}, which "
            "would be replaced. Choose an output folder outside the checkpoint."
        )
    if output_dir.is_symlink():
        raise FileExistsError(f"{output_dir} is a symbolic link; give the folder it points to, or another output.")
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(
            f"{output_dir} is a file, not a folder: a conversion writes a folder and never replaces a file. Remove it "
            "or choose another output folder."
        )
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} exists; pass overwrite=True (--overwrite) to replace it.")


def _record_written_files(folder: Path) -> None:
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir())}
    record = {"written_by": "astromer convert", "files": files}
    (folder / CONVERSION_RECORD).write_text(json.dumps(record, indent=1) + "\n")


def _foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` a conversion did not write: everything, unless its :data:`CONVERSION_RECORD` lists each
    entry as a plain file of the same size."""
    try:
        written = json.loads((folder / CONVERSION_RECORD).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        written = {}
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name == CONVERSION_RECORD and isinstance(written, dict) and written:
            continue
        ours = (
            isinstance(written, dict)
            and not entry.is_symlink()
            and entry.is_file()
            and written.get(entry.name) == entry.stat().st_size
        )
        if not ours:
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _put_in_place(staging: Path, output_dir: Path) -> None:
    """Rename the finished ``staging`` folder to ``output_dir``; an existing ``output_dir`` is deleted if a conversion
    wrote all of it, kept as ``<name>.previous`` otherwise (a :class:`ConversionNote` says where)."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    foreign = _foreign_entries(output_dir)
    aside = _free_name(output_dir.with_name(output_dir.name + ".previous")) if foreign else staging.with_name(
        staging.name + ".replaced"
    )
    output_dir.rename(aside)
    try:
        staging.rename(output_dir)
    except BaseException:
        aside.rename(output_dir)
        raise
    if not foreign:
        shutil.rmtree(aside)
        return
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    warnings.warn(
        f"{output_dir} held files a conversion did not write ({shown}); the previous folder was kept as {aside}.",
        ConversionNote,
        stacklevel=3,
    )


def convert_tf_checkpoint(source: str | Path, output_dir: str | Path, overwrite: bool = False) -> Path:
    """Convert an original Astromer checkpoint (zip or folder) into a ``save_pretrained`` folder.

    Args:
        source: released zip, or a folder holding ``conf.json``/``config.toml`` and the weights.
        output_dir: folder to create; it must not be, or contain, ``source``.
        overwrite: replace `output_dir` if it is a folder that exists. What an earlier conversion wrote there is
            deleted; a folder holding anything else is kept as ``<output_dir>.previous`` (see :class:`ConversionNote`).

    Returns:
        The output folder.

    Raises:
        FileNotFoundError: the source does not exist.
        FileExistsError: `output_dir` is a file or a symbolic link, or exists and `overwrite` is False.
        ValueError: `output_dir` is or contains `source`; the checkpoint is malformed, outside the accepted limits
            (:data:`CONFIG_LIMITS`, :data:`MAX_PARAMETERS`, sizes of the files), holds NaN or infinite weights, or its
            tensors do not match the architecture (names listed).

    Warns:
        ConversionNote: tensors cast to float32; an existing output folder kept aside.
    """
    from .. import AstromerProcessor

    source, output_dir = Path(source), Path(output_dir)
    if not source.exists():
        raise FileNotFoundError(f"No checkpoint at {source}.")
    _check_output(source, output_dir, overwrite)

    with tempfile.TemporaryDirectory(prefix="astromer-convert-") as scratch, _open_source(source) as files:
        checkpoint = locate_checkpoint(files)
        config = config_from_original(checkpoint)
        state, casts = _read_weights(files, checkpoint, config, Path(scratch))
        model = _model_class()(config)
        model.load_state_dict(state, strict=True)
        del state
        n_params = sum(p.numel() for p in model.parameters())
        if files.archive is not None:
            checksums = {source.name: sha256_of(source)}
        else:
            checksums = {name: sha256_of(source / name) for name in _checkpoint_files(files, checkpoint)}

    for note in casts:
        warnings.warn(f"{source}: cast to float32: {note}", ConversionNote, stacklevel=2)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        model.save_pretrained(staging)
        AstromerProcessor.from_model_config(config).save_pretrained(staging)
        (staging / "README.md").write_text(render_model_card(config, checkpoint, source, checksums, n_params, casts))
        _record_written_files(staging)
        _check_output(source, output_dir, overwrite)  # again: the output may have appeared meanwhile
        _put_in_place(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


__all__ = [
    "CONFIG_LIMITS",
    "CONVERSION_RECORD",
    "MAX_CONFIG_BYTES",
    "MAX_PARAMETERS",
    "ConversionNote",
    "OriginalCheckpoint",
    "config_from_original",
    "convert_tf_checkpoint",
    "locate_checkpoint",
    "render_model_card",
    "sha256_of",
]
