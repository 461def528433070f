"""``astromer export onnx MODEL --out FILE``: the encoder as an ONNX graph whose batch and length axes are dynamic,
giving PyTorch's outputs under onnxruntime on the CPU (one export, through the command, shared by the tests: an
export takes tens of seconds on a busy machine)."""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from astromer_hf import AstromerConfig, AstromerModel  # noqa: E402
from astromer_hf.cli import main  # noqa: E402
from astromer_hf.export import INPUT_NAMES, OUTPUT_NAMES  # noqa: E402

TINY_A1 = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "num_hidden_layers": 1}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny Astromer 1 (additive mask, its +1 bias on padding) saved to a folder and exported by the command."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = AstromerModel(AstromerConfig.from_preset("astromer-1", **TINY_A1)).eval()
    model.save_pretrained(folder)
    out = folder.parent / "onnx" / "encoder.onnx"
    assert main(["export", "onnx", str(folder), "--out", str(out)]) == 0
    return model, out, folder


def windows(batch, length, seed):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(2.0, (batch, length)), axis=1)
    mask = np.ones((batch, length), dtype=np.int64)
    mask[0, length // 3:] = 0  # a padded window beside full ones
    return {"magnitudes": rng.standard_normal((batch, length)).astype(np.float32),
            "times": (times - times.mean(1, keepdims=True)).astype(np.float32), "attention_mask": mask}


@pytest.mark.parametrize(("batch", "length"), [(5, 200), (1, 57), (3, 333)])
def test_onnxruntime_gives_the_pytorch_embeddings_at_any_batch_and_length(exported, batch, length):
    model, path, _ = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = windows(batch, length, seed=batch)
    (states,) = session.run(None, inputs)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).last_hidden_state.numpy()
    assert states.shape == (batch, length, 32)
    np.testing.assert_allclose(states, expected, atol=1e-4, rtol=1e-4)


def test_the_graph_names_its_inputs_and_keeps_batch_and_length_symbolic(exported):
    _, path, _ = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    for tensor in (*graph.input, *graph.output):
        batch, length = tensor.type.tensor_type.shape.dim[:2]
        assert batch.dim_param and length.dim_param and not batch.dim_value and not length.dim_value


def test_an_existing_file_is_kept_unless_overwrite_is_given(exported, capsys):
    _, path, folder = exported
    before = path.read_bytes()
    assert main(["export", "onnx", str(folder), "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert "astromer export: error:" in err and "exists" in err and "--overwrite" in err
    assert path.read_bytes() == before
