"""Convert an original TensorFlow Astromer checkpoint (Astromer 1 or 2) into a ``save_pretrained`` folder.

Accepted sources: a released zip (e.g. ``macho_a0.zip``, ``pt_macho_v2_2025.zip``) or a checkpoint folder. The
folder holds the configuration (``conf.json`` for Astromer 1, ``config.toml`` for Astromer 2) and the weights as a
TensorFlow tensor bundle (``weights.index`` + ``weights.data-*``) or a Keras ``.h5`` file. Nothing here needs
TensorFlow: :mod:`astromer_hf.convert.tf_bundle` and :mod:`astromer_hf.convert.keras_h5` parse the files.

The output folder holds ``config.json`` + ``model.safetensors`` of :class:`AstromerForMaskedReconstruction`, the
``preprocessor_config.json`` of a matching :class:`AstromerProcessor`, and a ``README.md`` model card recording the
source file and its sha256. It is written to a temporary sibling folder and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..configuration_astromer import AstromerConfig
from .keras_h5 import read_keras_h5
from .tf_bundle import read_tensor_bundle
from .weight_mapping import map_original_weights

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

A1_CONFIG_NAME = "conf.json"
A2_CONFIG_NAME = "config.toml"


@dataclass
class OriginalCheckpoint:
    """A located original checkpoint: its folder, configuration file, weight file(s) and generation."""

    folder: Path
    config_file: Path
    weights: Path  # tensor-bundle prefix (``.../weights``) or ``.h5`` file
    generation: str  # "astromer-1" or "astromer-2"
    raw_config: dict


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _flatten(table: dict) -> dict:
    """Merge nested TOML tables into one flat dict (Astromer 2 configs are flat, but sections are tolerated)."""
    flat = {}
    for key, value in table.items():
        flat.update(_flatten(value) if isinstance(value, dict) else {key: value})
    return flat


def _config_from_astromer1(conf: dict) -> AstromerConfig:
    """``conf.json`` of Astromer 1. Its ``head_dim`` is the model width; its ``base`` is never used by the code."""
    if conf.get("use_leak", False):
        raise ValueError(
            "conf.json sets `use_leak: true`; only the released Astromer 1 layout without residuals is supported."
        )
    return AstromerConfig.from_preset(
        "astromer-1",
        hidden_size=int(conf["head_dim"]),
        num_hidden_layers=int(conf["layers"]),
        num_attention_heads=int(conf["heads"]),
        intermediate_size=int(conf["dff"]),
        hidden_dropout_prob=float(conf.get("dropout", 0.1)),
        window_size=int(conf.get("max_obs", 200)),
        mask_probed_fraction=float(conf.get("msk_frac", 0.5)),
        mask_random_fraction=float(conf.get("rnd_frac", 0.2)),
        mask_same_fraction=float(conf.get("same_frac", 0.2)),
    )


def _config_from_astromer2(conf: dict) -> AstromerConfig:
    """``config.toml`` of Astromer 2 (``get_ASTROMER`` arguments). ``head_dim`` is per head; ``pe_base``/``pe_exp``
    are never used by the code (the encoding always uses base 10000)."""
    heads = int(conf["num_heads"])
    m_alpha = float(conf.get("m_alpha", -1e9))
    mask_format = str(conf.get("mask_format", "K"))
    if float(conf.get("temperature", 0) or 0) != 0:
        raise ValueError(f"config.toml sets temperature={conf['temperature']}; only temperature 0 is supported.")
    if str(conf.get("loss_format", "rmse")) != "rmse":
        raise ValueError(f"config.toml sets loss_format={conf['loss_format']!r}; only 'rmse' is supported.")
    if m_alpha == 1 or str(conf.get("arch", "base")) == "zero":
        mask_style = "additive_one"  # the legacy "zero" architecture reproduces Astromer 1's +1 mask
    elif mask_format == "K" and m_alpha < 0:
        mask_style = "key"
    else:
        raise ValueError(
            f"config.toml sets mask_format={mask_format!r}, m_alpha={m_alpha}; supported are 'K' with a large "
            "negative m_alpha (Astromer 2) and m_alpha=1 (the Astromer 1 '+1' mask)."
        )
    return AstromerConfig.from_preset(
        "astromer-2",
        hidden_size=heads * int(conf["head_dim"]),
        num_hidden_layers=int(conf["num_layers"]),
        num_attention_heads=heads,
        intermediate_size=int(conf["mixer_size"]),
        hidden_dropout_prob=float(conf.get("dropout", 0.1)),
        window_size=int(conf.get("window_size", 200)),
        residual_style="projected" if conf.get("use_leak", True) else "none",
        attention_mask_style=mask_style,
        use_mask_token=not conf.get("no_msk_token", False),
        mask_probed_fraction=float(conf.get("probed", 0.5)),
        mask_random_fraction=float(conf.get("rs", 0.2)),
        mask_same_fraction=float(conf.get("same", conf.get("rs", 0.2))),
        loss_weighting="inverse_error" if conf.get("correct_loss", False) else "none",
    )


def config_from_original(checkpoint: OriginalCheckpoint) -> AstromerConfig:
    """Translate the original configuration into an :class:`AstromerConfig`."""
    try:
        if checkpoint.generation == "astromer-1":
            return _config_from_astromer1(checkpoint.raw_config)
        return _config_from_astromer2(checkpoint.raw_config)
    except KeyError as missing:
        raise ValueError(f"{checkpoint.config_file} lacks the field {missing}.") from None


def locate_checkpoint(folder: Path) -> OriginalCheckpoint:
    """Find the configuration and weights inside an unpacked checkpoint folder (searched recursively)."""
    configs = sorted(folder.rglob(A1_CONFIG_NAME)) + sorted(folder.rglob(A2_CONFIG_NAME))
    # A2 pipelines keep copies of config.toml next to data splits; the checkpoint's is the one beside weights.
    configs = [c for c in configs if any(c.parent.glob("*.index")) or any(c.parent.glob("*.h5"))]
    if len(configs) != 1:
        found = ", ".join(str(c.relative_to(folder)) for c in configs) or "none"
        raise ValueError(
            f"Expected exactly one checkpoint (a {A1_CONFIG_NAME} or {A2_CONFIG_NAME} beside a weights.index or .h5 "
            f"file) under {folder}; found {found}."
        )
    config_file = configs[0]
    if config_file.name == A1_CONFIG_NAME:
        generation, raw = "astromer-1", json.loads(config_file.read_text())
    else:
        generation, raw = "astromer-2", _flatten(tomllib.loads(config_file.read_text()))
    indexes = sorted(config_file.parent.glob("*.index"))
    h5_files = sorted(config_file.parent.glob("*.h5"))
    if len(indexes) > 1 or (not indexes and len(h5_files) > 1):
        names = ", ".join(p.name for p in indexes or h5_files)
        raise ValueError(f"Several weight files in {config_file.parent}: {names}; keep one.")
    weights = indexes[0].with_suffix("") if indexes else h5_files[0]
    return OriginalCheckpoint(config_file.parent, config_file, weights, generation, raw)


def _safe_extract(archive: zipfile.ZipFile, destination: Path) -> None:
    """Extract a zip, refusing members that would land outside `destination`."""
    root = destination.resolve()
    for member in archive.infolist():
        target = (destination / member.filename).resolve()
        if root != target and root not in target.parents:
            raise ValueError(f"Refusing archive member {member.filename!r}: it points outside the extraction folder.")
    archive.extractall(destination)


def _checkpoint_files(checkpoint: OriginalCheckpoint) -> list[Path]:
    if checkpoint.weights.suffix == ".h5":
        return [checkpoint.config_file, checkpoint.weights]
    prefix = checkpoint.weights
    return [checkpoint.config_file, prefix.with_suffix(".index"), *sorted(prefix.parent.glob(prefix.name + ".data-*"))]


def render_model_card(
    config: AstromerConfig, checkpoint: OriginalCheckpoint, source: Path, source_sha256: dict[str, str], n_params: int
) -> str:
    """The README.md written beside a converted model: provenance (source files, their sha256, the original
    configuration), architecture, how to load it (see :func:`astromer_hf.model_card.render_model_card`)."""
    from .. import __version__
    from ..model_card import render_model_card as render_card

    checksums = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in source_sha256.items())
    original_config = json.dumps(checkpoint.raw_config, indent=2, sort_keys=True, default=str)
    generation = "Astromer 1" if checkpoint.generation == "astromer-1" else "Astromer 2"
    provenance = (
        f"Weights of the original TensorFlow Astromer checkpoint `{source.name}`, converted to PyTorch with "
        f"`astromer convert` (astromer_hf {__version__}). The tensors are the original float32 values, renamed and "
        "with Keras `[in, out]` kernels transposed; nothing was retrained.\n\n"
        f"| file | sha256 |\n|---|---|\n{checksums}\n\n"
        f"Original configuration (`{checkpoint.config_file.name}`):\n\n```json\n{original_config}\n```"
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


def convert_tf_checkpoint(source: str | Path, output_dir: str | Path, overwrite: bool = False) -> Path:
    """Convert an original Astromer checkpoint (zip or folder) into a ``save_pretrained`` folder.

    Args:
        source: released zip, or a folder holding ``conf.json``/``config.toml`` and the weights.
        output_dir: folder to create.
        overwrite: replace `output_dir` if it exists.

    Returns:
        The output folder.

    Raises:
        FileNotFoundError: the source does not exist.
        FileExistsError: `output_dir` exists and `overwrite` is False.
        ValueError: the checkpoint is malformed, or its tensors do not match the architecture (names listed).
    """
    from .. import AstromerForMaskedReconstruction, AstromerProcessor

    source, output_dir = Path(source), Path(output_dir)
    if not source.exists():
        raise FileNotFoundError(f"No checkpoint at {source}.")
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} exists; pass overwrite=True (--overwrite) to replace it.")

    with tempfile.TemporaryDirectory(prefix="astromer-convert-") as scratch:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise ValueError(f"{source} is neither a folder nor a zip archive.")
            with zipfile.ZipFile(source) as archive:
                _safe_extract(archive, Path(scratch))
            checkpoint = locate_checkpoint(Path(scratch))
            checksums = {source.name: sha256_of(source)}
        else:
            checkpoint = locate_checkpoint(source)
            checksums = {str(p.relative_to(source)): sha256_of(p) for p in _checkpoint_files(checkpoint)}

        config = config_from_original(checkpoint)
        read = read_keras_h5 if checkpoint.weights.suffix == ".h5" else read_tensor_bundle
        tensors = read(checkpoint.weights)
        model = AstromerForMaskedReconstruction(config)
        expected = {name: tensor.shape for name, tensor in model.state_dict().items()}
        state, _ = map_original_weights(tensors, expected, config.hidden_size, config.intermediate_size)
        model.load_state_dict(state, strict=True)
        n_params = sum(p.numel() for p in model.parameters())

        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
        try:
            model.save_pretrained(staging)
            AstromerProcessor.from_model_config(config).save_pretrained(staging)
            card = render_model_card(config, checkpoint, source, checksums, n_params)
            (staging / "README.md").write_text(card)
            if output_dir.exists():  # swap, so the old folder survives any failure before the new one is in place
                replaced = staging.with_name(staging.name + ".replaced")
                output_dir.rename(replaced)
                staging.rename(output_dir)
                shutil.rmtree(replaced)
            else:
                staging.rename(output_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return output_dir
