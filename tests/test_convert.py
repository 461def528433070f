"""`astromer convert`: released Astromer 1 zip and folder, Astromer 2 layouts, refusals, atomic output."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from keras_files import write_keras2_layers
from tf_bundle_writer import write_tensor_bundle

from astromer_hf import AstromerConfig, AstromerForMaskedReconstruction, AstromerModel, AstromerProcessor
from astromer_hf.cli import main
from astromer_hf.convert.convert_tf_checkpoint import convert_tf_checkpoint
from astromer_hf.convert.tf_bundle import read_tensor_bundle

ZIP_SHA256 = "76a204a37a0d47bfd722477f55231624c0c56cf9eea3369b5f22ff445d95158b"
INDEX_SHA256 = "09c628f4fa0264c2d64b801fda150f54ed23a3f169f6eff2a525dedb3abe517e"
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def test_cli_converts_the_released_zip(reference_dir, tmp_path, capsys):
    out = tmp_path / "astromer-1-macho"
    assert main(["convert", "--from-tf", str(reference_dir / "macho_a0.zip"), "--out", str(out)]) == 0
    assert "Converted" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    model = AstromerForMaskedReconstruction.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == 661_505
    expected = np.load(reference_dir / "macho_a0_weights.npz")
    # bit-faithful: every tensor is the original float32 value (Keras [in, out] kernels transposed)
    torch.testing.assert_close(
        model.astromer.encoder.layers[1].attention.q_proj.weight,
        torch.from_numpy(expected["layer_with_weights-0/enc_layers/1/mha/wq/kernel"]).T,
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(
        model.head.projection.bias, torch.from_numpy(expected["layer_with_weights-1/reg_layer/bias"]), rtol=0, atol=0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "astromer" and config["num_hidden_layers"] == 2
    assert config["residual_style"] == "none" and config["attention_mask_style"] == "additive_one"
    processor = AstromerProcessor.from_pretrained(out)
    assert processor.window_size == 200 and processor.mask_probed_fraction == 0.5

    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "macho_a0.zip" in card and ZIP_SHA256 in card
    for section in ("## Provenance", "## Model", "## Intended use and limits", "## How to load and embed", "## Citation"):
        assert section in card
    assert "661,505 parameters" in card and '"exp_date": "2021-09-29 02:34:42"' in card


def test_converting_the_unpacked_folder_gives_the_same_weights(reference_dir, tmp_path):
    from_zip = convert_tf_checkpoint(reference_dir / "macho_a0.zip", tmp_path / "zip")
    from_folder = convert_tf_checkpoint(reference_dir / "tf_checkpoint", tmp_path / "folder")
    a = AstromerModel.from_pretrained(from_zip).state_dict()
    b = AstromerModel.from_pretrained(from_folder).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card = (from_folder / "README.md").read_text()
    assert INDEX_SHA256 in card and "weights.data-00000-of-00001" in card


@pytest.fixture
def editable_checkpoint(reference_dir, tmp_path) -> Path:
    folder = tmp_path / "checkpoint"
    shutil.copytree(reference_dir / "tf_checkpoint", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def rewrite(folder: Path, change) -> None:
    tensors = read_tensor_bundle(folder / "weights")
    change(tensors)
    for path in folder.glob("weights.*"):
        path.unlink()
    write_tensor_bundle(folder / "weights", tensors)


def test_missing_and_unexpected_tensors_are_refused_with_their_names(editable_checkpoint, tmp_path, capsys):
    missing = "layer_with_weights-0/enc_layers/1/layernorm2/gamma" + SUFFIX

    def change(tensors):
        del tensors[missing]
        tensors["layer_with_weights-0/enc_layers/0/mystery/kernel" + SUFFIX] = np.zeros((2, 2), np.float32)

    rewrite(editable_checkpoint, change)
    out = tmp_path / "out"
    assert main(["convert", "--from-tf", str(editable_checkpoint), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "layer_with_weights-0/enc_layers/0/mystery/kernel" in error
    assert "astromer.encoder.layers.1.output_norm.weight" in error
    assert not out.exists() and list(tmp_path.glob(".out.*")) == []  # nothing half-written


def test_shape_mismatch_is_refused(editable_checkpoint, tmp_path):
    name = "layer_with_weights-0/inp_transform/bias" + SUFFIX
    rewrite(editable_checkpoint, lambda tensors: tensors.__setitem__(name, np.zeros(255, np.float32)))
    with pytest.raises(ValueError, match="shape mismatches: .*inp_transform/bias"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")


def test_optimizer_slots_are_skipped(editable_checkpoint, tmp_path, reference_dir):
    slot = "layer_with_weights-0/inp_transform/bias/.OPTIMIZER_SLOT/optimizer/m" + SUFFIX
    rewrite(editable_checkpoint, lambda tensors: tensors.__setitem__(slot, np.ones(256, np.float32)))
    out = convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")
    assert sum(p.numel() for p in AstromerForMaskedReconstruction.from_pretrained(out).parameters()) == 661_505


def test_existing_output_is_kept_unless_overwrite(reference_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["convert", "--from-tf", str(reference_dir / "macho_a0.zip"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(["convert", "--from-tf", str(reference_dir / "macho_a0.zip"), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        convert_tf_checkpoint(tmp_path / "absent.zip", tmp_path / "out")
    not_zip = tmp_path / "weights.bin"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        convert_tf_checkpoint(not_zip, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Expected exactly one checkpoint"):
        convert_tf_checkpoint(tmp_path / "empty", tmp_path / "out")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside the extraction folder"):
        convert_tf_checkpoint(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


# ---------------------------------------------------------------------------------------------------- Astromer 2
A2_TOML = """
num_layers = {layers}
num_heads = 4
head_dim = 64
mixer_size = 512
dropout = 0.1
pe_base = 1000
pe_dim = 256
pe_c = 2.0
window_size = 200
m_alpha = -1000000000.0
mask_format = "K"
use_leak = true
loss_format = "rmse"
correct_loss = false
trainable_mask = true
temperature = 0.0
probed = 0.5
rs = 0.2
same = 0.2
arch = "base"
"""


def astromer2_names(model: AstromerForMaskedReconstruction, layout: str) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The model's tensors under the Astromer 2 variable names (``src/layers``), grouped by Keras layer, either as
    tensor-bundle object paths (``bundle``) or as Keras 2 ``.h5`` weight names (``h5``)."""
    attention = {"q_proj": "WQ", "k_proj": "WK", "v_proj": "WV", "out_proj": "attmerge"}
    norms = {"attention_norm": "layernorm1", "output_norm": "layernorm2"}
    residuals = {"attention_residual": "reshape_leak_1", "output_residual": "reshape_leak_2"}
    kinds = {"weight": "kernel", "bias": "bias"}
    grouped: dict[str, list[tuple[str, np.ndarray]]] = {"msk": [], "encoder": [], "regression": []}
    for name, tensor in model.state_dict().items():
        value = tensor.numpy()
        parts = name.split(".")
        if parts[-1] == "mask_token":
            grouped["msk"].append(("msk_token", value))
            continue
        if value.ndim == 2:
            value = value.T.copy()
        if parts[:2] == ["astromer", "embeddings"]:
            grouped["encoder"].append((f"inp_transform/{kinds[parts[-1]]}", value))
        elif parts[0] == "head":
            layer = "bn_0" if parts[1] == "norm" else "reconstruction"
            leaf = {"weight": "gamma", "bias": "beta"}[parts[-1]] if parts[1] == "norm" else kinds[parts[-1]]
            grouped["regression"].append((f"{layer}/{leaf}", value))
        else:
            index, module, leaf = parts[3], parts[4], parts[-1]
            block = f"att_layer_{index}" if layout == "h5" else f"enc_layers/{index}"
            if module == "attention":
                path = f"mha/{attention[parts[5]]}/{kinds[leaf]}"
            elif module in norms:
                path = f"{norms[module]}/{ {'weight': 'gamma', 'bias': 'beta'}[leaf]}"
            elif module in residuals:
                path = f"{residuals[module]}/{kinds[leaf]}"
            else:  # the feed-forward Sequential: Dense layers named dense_{k} in .h5, indexed in bundles
                which = 0 if module == "intermediate" else 1
                dense = f"dense_{2 * int(index) + which + 7}" if layout == "h5" else f"layer_with_weights-{which}"
                path = f"ffn/{dense}/{kinds[leaf]}"
            grouped["encoder"].append((f"{block}/{path}", value))
    return grouped


@pytest.mark.parametrize("layout", ["bundle", "h5"])
def test_astromer2_checkpoints_convert_and_reproduce_the_model(tmp_path, layout):
    torch.manual_seed(0)
    source = AstromerForMaskedReconstruction(AstromerConfig.from_preset("astromer-2")).eval()
    with torch.no_grad():
        source.astromer.embeddings.mask_token.fill_(0.37)
    folder = tmp_path / "weights" / "astromer_v2" / "macho"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(A2_TOML.format(layers=6))
    grouped = astromer2_names(source, layout)
    if layout == "bundle":
        owners = {"msk": "layer_with_weights-0", "encoder": "layer_with_weights-1", "regression": "layer_with_weights-2"}
        tensors = {f"{owners[g]}/{n}{SUFFIX}": v for g, items in grouped.items() for n, v in items}
        write_tensor_bundle(folder / "weights", tensors)
    else:
        layers = {
            "add_msk_token": [(f"add_msk_token/{n}:0", v) for n, v in grouped["msk"]],
            "encoder": [(f"encoder/{n}:0", v) for n, v in grouped["encoder"]],
            "regression": [(f"regression/{n}:0", v) for n, v in grouped["regression"]],
        }
        write_keras2_layers(folder / "weights.h5", layers)
    archive = tmp_path / "pt_macho_v2_2025.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in folder.iterdir():
            zipped.write(path, f"astromer_v2/macho/{path.name}")

    out = convert_tf_checkpoint(archive, tmp_path / "astromer-2")
    converted = AstromerForMaskedReconstruction.from_pretrained(out).eval()
    config = converted.config
    assert (config.num_hidden_layers, config.residual_style, config.attention_mask_style) == (6, "projected", "key")
    assert config.use_mask_token and sum(p.numel() for p in converted.parameters()) == 3_953_410
    assert converted.astromer.embeddings.mask_token.item() == pytest.approx(0.37)

    generator = torch.Generator().manual_seed(1)
    batch = dict(
        magnitudes=torch.randn(2, 200, generator=generator),
        times=torch.linspace(-300, 300, 200).repeat(2, 1),
        attention_mask=torch.ones(2, 200, dtype=torch.long),
        masked_positions=(torch.rand(2, 200, generator=generator) < 0.3).long(),
    )
    batch["attention_mask"][1, 150:] = 0
    with torch.no_grad():
        assert torch.equal(converted(**batch).reconstruction, source(**batch).reconstruction)
    card = (out / "README.md").read_text()
    assert "Astromer 2" in card and "pt_macho_v2_2025.zip" in card


# ---------------------------------------------------------------------------------------------------- structure
def _package_imports() -> dict[str, set[str]]:
    """Module -> the astromer_hf modules it imports anywhere (top level or inside functions), from the source."""
    import ast

    package = Path(__file__).resolve().parents[1] / "astromer_hf"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = ("astromer_hf", *path.relative_to(package).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        here = parts[:-1]  # the package a relative import starts from
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith("astromer_hf"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ((base,) if base else ()))
                if base.startswith("astromer_hf"):
                    targets.add(base)
                    targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {name: {t for t in targets if t in graph} for name, targets in graph.items()}


def test_the_converter_the_model_card_and_the_releases_import_no_cycle():
    """convert -> model_card -> releases -> convert was a cycle; the citations now live in their own module. (Edges
    into the package root are left out: `astromer_hf/__init__` imports everything by design.)"""
    graph = {name: targets - {"astromer_hf"} for name, targets in _package_imports().items()}
    assert "astromer_hf.citations" in graph["astromer_hf.model_card"]
    assert "astromer_hf.citations" in graph["astromer_hf.releases"] and graph["astromer_hf.citations"] == set()
    mine = [name for name in graph if name.startswith(("astromer_hf.convert", "astromer_hf.model_card",
                                                       "astromer_hf.releases", "astromer_hf.hub", "astromer_hf.citations"))]
    for start in mine:
        seen, stack = set(), [(start, (start,))]
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                assert target != start, "import cycle: " + " -> ".join((*path, target))
                if target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
