"""`astromer convert`: released Astromer 1 zip and folder, Astromer 2 layouts, refusals, atomic output."""

import json
import re
import shutil
import struct
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


# ---------------------------------------------------------------------------------------------------- output safety
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_output_that_is_or_contains_the_source_is_refused(reference_dir, tmp_path, capsys):
    """`--out` equal to the checkpoint folder, or a parent of the checkpoint (folder or zip), used to delete the
    checkpoint and everything beside it, with exit 0."""
    work = tmp_path / "work"
    shutil.copytree(reference_dir / "tf_checkpoint", work / "checkpoint")
    shutil.copyfile(reference_dir / "macho_a0.zip", work / "macho_a0.zip")
    (work / "notes.txt").write_text("unrelated, mine")
    (tmp_path / "link").symlink_to(work / "checkpoint", target_is_directory=True)
    before = _snapshot(work)
    cases = [
        (work / "checkpoint", work / "checkpoint", "is the checkpoint"),
        (work / "checkpoint", work, "contains the checkpoint"),
        (work / "macho_a0.zip", work, "contains the checkpoint"),
        (work / "checkpoint", tmp_path / "link", "is the checkpoint"),  # the same folder through a symbolic link
        (tmp_path / "link", work, "contains the checkpoint"),
    ]
    for source, out, message in cases:
        assert main(["convert", "--from-tf", str(source), "--out", str(out), "--overwrite"]) == 2
        error = capsys.readouterr().err
        assert "Refusing to write the converted model" in error and message in error, error
        assert _snapshot(work) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "work"]  # no staging folder left either


def test_an_output_naming_a_file_is_refused_and_left_alone(reference_dir, tmp_path, capsys):
    target = tmp_path / "model"
    target.write_text("precious")
    for extra in ([], ["--overwrite"]):
        assert main(["convert", "--from-tf", str(reference_dir / "macho_a0.zip"), "--out", str(target), *extra]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
        assert target.read_text() == "precious"
        assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no `.replaced` (or any) file left behind


def test_overwrite_deletes_only_what_a_conversion_wrote(reference_dir, tmp_path, capsys):
    from astromer_hf.convert.convert_tf_checkpoint import CONVERSION_RECORD

    zipped, out = str(reference_dir / "macho_a0.zip"), tmp_path / "out"
    assert main(["convert", "--from-tf", zipped, "--out", str(out)]) == 0
    record = json.loads((out / CONVERSION_RECORD).read_text())
    assert {"config.json", "model.safetensors", "README.md"} <= set(record["files"])
    # an earlier conversion is replaced without a trace
    assert main(["convert", "--from-tf", zipped, "--out", str(out), "--overwrite"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    # a folder holding anything else is kept, beside the new one
    (out / "my_notes.txt").write_text("mine")
    (out / "config.json").write_text("{}")  # changed by hand: no longer what the conversion wrote
    assert main(["convert", "--from-tf", zipped, "--out", str(out), "--overwrite"]) == 0
    error = capsys.readouterr().err
    assert "note:" in error and "my_notes.txt" in error and "out.previous" in error
    assert (tmp_path / "out.previous" / "my_notes.txt").read_text() == "mine"
    assert (tmp_path / "out.previous" / "config.json").read_text() == "{}"
    assert not (out / "my_notes.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.previous"]


# ---------------------------------------------------------------------------------------------------- hostile input
def _declare_member_size(archive: Path, member: str, size: int) -> None:
    """Make `member` of a stored (uncompressed) zip *declare* `size` bytes, stored and unpacked, in its local and
    central headers, without writing them."""
    data = bytearray(archive.read_bytes())
    name = member.encode()
    # (signature, offset of the compressed size (the uncompressed size follows), of the name length, header size)
    for signature, sizes_offset, name_length_offset, header_size in ((b"PK\x03\x04", 18, 26, 30),
                                                                      (b"PK\x01\x02", 20, 28, 46)):
        position = data.find(signature)
        while position >= 0:
            (length,) = struct.unpack_from("<H", data, position + name_length_offset)
            if bytes(data[position + header_size : position + header_size + length]) == name:
                struct.pack_into("<II", data, position + sizes_offset, size, size)
            position = data.find(signature, position + 4)
    archive.write_bytes(bytes(data))


def _zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"macho/{path.name}")
        for name, payload in (extra or {}).items():
            zipped.writestr(name, payload)
    return archive


def test_a_zip_is_read_member_by_member_and_a_huge_extra_member_is_never_touched(reference_dir, tmp_path):
    archive = _zip_folder(reference_dir / "tf_checkpoint", tmp_path / "macho_a0.zip",
                          {"macho/logs/train/events.out.tfevents.big": b"x" * 64})
    _declare_member_size(archive, "macho/logs/train/events.out.tfevents.big", 2 << 30)  # declares 2 GiB
    assert zipfile.ZipFile(archive).getinfo("macho/logs/train/events.out.tfevents.big").file_size == 2 << 30
    out = convert_tf_checkpoint(archive, tmp_path / "out")
    expected = np.load(reference_dir / "macho_a0_weights.npz")
    model = AstromerForMaskedReconstruction.from_pretrained(out)
    assert torch.equal(model.head.projection.bias, torch.from_numpy(expected["layer_with_weights-1/reg_layer/bias"]))


def test_a_needed_zip_member_declaring_gigabytes_is_refused_before_reading(reference_dir, tmp_path):
    archive = _zip_folder(reference_dir / "tf_checkpoint", tmp_path / "macho_a0.zip")
    _declare_member_size(archive, "macho/weights.data-00000-of-00001", 2 << 30)
    with pytest.raises(ValueError, match=r"weights\.data-00000-of-00001: 2,147,483,648 bytes, more than a checkpoint "
                                         r"of 661,505 parameters can need"):
        convert_tf_checkpoint(archive, tmp_path / "out")
    _declare_member_size(archive, "macho/weights.data-00000-of-00001", 0)
    archive2 = _zip_folder(reference_dir / "tf_checkpoint", tmp_path / "conf.zip")
    _declare_member_size(archive2, "macho/conf.json", 1 << 30)
    with pytest.raises(ValueError, match=r"conf\.json: 1,073,741,824 bytes, more than the 1,048,576 a configuration"):
        convert_tf_checkpoint(archive2, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _bundle_with_entry(folder: Path, name: str, entry: bytes, shard: bytes = b"\0" * 16) -> None:
    """A checkpoint folder whose index holds one hand-made entry (the conf.json is the released one)."""
    from tf_bundle_writer import build_table, field_bytes, field_varint

    header = field_varint(1, 1) + field_bytes(3, field_varint(1, 1))
    (folder / "weights.index").write_bytes(build_table([(b"", header), (name.encode(), entry)]))
    (folder / "weights.data-00000-of-00001").write_bytes(shard)


def test_an_index_declaring_a_huge_tensor_is_refused_before_allocating(editable_checkpoint, tmp_path):
    from tf_bundle_writer import encode_entry

    bias = "layer_with_weights-0/inp_transform/bias" + SUFFIX
    # 256 GiB declared, 16 bytes in the shard: refused by the mapping (wrong shape) before any read ...
    _bundle_with_entry(editable_checkpoint, bias, encode_entry(1, (1 << 36,), 0, 1 << 38, 1))
    with pytest.raises(ValueError, match=r"shape mismatches: \S*inp_transform/bias\S* \(68719476736,\)"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")
    # ... and by the reader itself, against the shard's real size
    with pytest.raises(ValueError, match=r"needs bytes \[0, 274877906944\) but the file holds only 16 bytes"):
        read_tensor_bundle(editable_checkpoint)
    # a size that does not fit the dtype and shape is refused when the index is parsed
    _bundle_with_entry(editable_checkpoint, bias, encode_entry(1, (256,), 0, 1 << 38, 1))
    with pytest.raises(ValueError, match=r"declares 274877906944 bytes, but float32 \(256,\) needs 1024"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")
    # a negative offset
    _bundle_with_entry(editable_checkpoint, bias, encode_entry(1, (4,), -5, 16, 1))
    with pytest.raises(ValueError, match=r"weights\.index: tensor '.*inp_transform/bias.*' has a negative offset \(-5\)"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_sparse_shard_of_many_gigabytes_is_refused_by_its_size(editable_checkpoint, tmp_path):
    with open(editable_checkpoint / "weights.data-00000-of-00001", "r+b") as shard:
        shard.truncate(16 << 30)  # sparse: takes no disk space
    with pytest.raises(ValueError, match=r"17,179,869,184 bytes, more than a checkpoint of 661,505 parameters"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "out")


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ([2, 4, 256], r"must hold a JSON object of settings, not a list"),
        ({"layers": "two"}, r"'layers' must be a whole number, got 'two'"),
        ({"head_dim": 1e9}, r"'head_dim' is 1e\+09, outside the accepted range \[2, 16384\]"),
        ({"heads": -4}, r"'heads' is -4, outside the accepted range \[1, 256\]"),
        ({"dff": None}, r"'dff' must be a whole number, got None"),
        ({"dropout": 7}, r"'dropout' must be a number between 0 and 1, got 7"),
        ({"use_leak": "no"}, r"'use_leak' must be true or false, got 'no'"),
        ({"heads": 3}, r"`hidden_size` \(256\) must be divisible by `num_attention_heads` \(3\)"),
        ({"layers": None, "__drop__": "layers"}, r"lacks the field 'layers'"),
        ({"head_dim": 16384, "layers": 128, "dff": 65536},
         r"describes a model of 412,344,205,313 parameters, more than the 250,000,000"),
        ("{not json", r"is not valid JSON"),
    ],
    ids=["list", "text-layers", "huge-width", "negative", "null", "dropout", "flag", "indivisible", "missing",
         "too-many-parameters", "not-json"],
)
def test_hostile_configurations_are_refused_with_the_file_and_field(editable_checkpoint, tmp_path, capsys, conf, message):
    conf_file = editable_checkpoint / "conf.json"
    if isinstance(conf, dict):
        original = json.loads(conf_file.read_text())
        conf = dict(conf)
        original.pop(conf.pop("__drop__", None), None)
        conf_file.write_text(json.dumps({**original, **{k: v for k, v in conf.items() if k in original or v}}))
    else:
        conf_file.write_text(conf if isinstance(conf, str) else json.dumps(conf))
    assert main(["convert", "--from-tf", str(editable_checkpoint), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(conf_file) in error and re.search(message, error), error
    assert not (tmp_path / "out").exists()


def test_weights_that_are_not_float32_are_cast_and_said_so_and_nan_is_refused(editable_checkpoint, tmp_path, capsys):
    bias = "layer_with_weights-1/reg_layer/bias" + SUFFIX
    gamma = "layer_with_weights-0/enc_layers/0/layernorm1/gamma" + SUFFIX

    def change(tensors):
        tensors[bias] = np.array([3], dtype=np.int32)
        tensors[gamma] = tensors[gamma].astype(np.float64)

    rewrite(editable_checkpoint, change)
    out = tmp_path / "out"
    assert main(["convert", "--from-tf", str(editable_checkpoint), "--out", str(out)]) == 0
    error = capsys.readouterr().err
    assert f"cast to float32: {bias}: int32 -> float32" in error and f"{gamma}: float64 -> float32" in error
    model = AstromerForMaskedReconstruction.from_pretrained(out)
    assert model.head.projection.bias.dtype == torch.float32 and model.head.projection.bias.item() == 3.0
    card = (out / "README.md").read_text()
    assert "cast to float32" in card and f"{bias}: int32 -> float32" in card

    wq = "layer_with_weights-0/enc_layers/1/mha/wq/kernel" + SUFFIX
    rewrite(editable_checkpoint, lambda tensors: tensors[wq].__setitem__((3, 7), np.nan))
    assert main(["convert", "--from-tf", str(editable_checkpoint), "--out", str(tmp_path / "nan")]) == 2
    assert f"tensor {wq} holds 1 NaN and 0 infinite values of 65536" in capsys.readouterr().err
    rewrite(editable_checkpoint, lambda tensors: tensors.__setitem__(wq, tensors[wq].astype(np.complex64)))
    with pytest.raises(ValueError, match=r"must be real numbers.*wq/kernel.*complex64"):
        convert_tf_checkpoint(editable_checkpoint, tmp_path / "complex")
    assert not (tmp_path / "nan").exists() and not (tmp_path / "complex").exists()


def test_the_converter_and_the_releases_hash_files_with_the_package_helper():
    """One SHA-256 file-hashing helper for the whole package (astromer_hf/hashing.py), no hashlib loops of their own."""
    import ast

    graph = _package_imports()
    package = Path(__file__).resolve().parents[1] / "astromer_hf"
    for module in ("convert/convert_tf_checkpoint.py", "releases.py"):
        name = "astromer_hf." + module.removesuffix(".py").replace("/", ".")
        assert "astromer_hf.hashing" in graph[name], name
    for path in [*(package / "convert").glob("*.py"), package / "releases.py", package / "hub.py", package / "model_card.py"]:
        imported = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                    for alias in node.names}
        assert "hashlib" not in imported, path
