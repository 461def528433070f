"""A saved Astromer folder loads with `trust_remote_code=True` in a fresh process where `astromer_hf` cannot be
imported: the folder carries configuration_astromer.py / modeling_astromer.py and an `auto_map` for every Auto class."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch

from astromer_hf import AstromerConfig, AstromerForMaskedReconstruction, AstromerProcessor
from blocked_package import BLOCK_ASTROMER_HF

LOADER = BLOCK_ASTROMER_HF + textwrap.dedent(
    """
    import numpy as np
    import torch
    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

    folder, inputs, output = sys.argv[1:4]
    batch = {k: torch.from_numpy(v) for k, v in np.load(inputs).items()}
    encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    pretraining = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True, num_labels=5)
    processor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    curves = [np.column_stack([np.arange(n) * 1.7 + 50000.0, np.sin(np.arange(n)), np.full(n, 0.05)]) for n in (30, 250)]
    windows = processor(curves, mask=True, seed=3)
    assert "astromer_hf" not in sys.modules
    with torch.no_grad():
        np.savez(
            output,
            embedding=encoder(**batch).last_hidden_state.numpy(),
            reconstruction=pretraining(**batch).reconstruction.numpy(),
            n_classes=classifier.eval()(**batch).logits.shape[-1],
            module=type(encoder).__module__,
            processor_module=type(processor).__module__,
            window_size=processor.window_size,
            **{f"processed_{k}": v.numpy() for k, v in windows.items()},
        )
    """
)


def test_saved_model_loads_with_trust_remote_code_without_the_package(tmp_path):
    config = AstromerConfig.from_preset("astromer-2", num_hidden_layers=2)
    torch.manual_seed(0)
    model = AstromerForMaskedReconstruction(config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor = AstromerProcessor(window_size=120, windows="legacy")
    processor.save_pretrained(folder)
    code = {"configuration_astromer.py", "modeling_astromer.py", "processing_astromer.py", "lightcurves.py", "masking.py"}
    assert code <= {p.name for p in folder.iterdir()}
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification"}

    generator = torch.Generator().manual_seed(0)
    batch = {
        "magnitudes": torch.randn(2, 50, generator=generator),
        "times": torch.linspace(-40, 40, 50).repeat(2, 1),
        "attention_mask": torch.ones(2, 50, dtype=torch.long),
    }
    batch["attention_mask"][0, 30:] = 0
    np.savez(tmp_path / "inputs.npz", **{k: v.numpy() for k, v in batch.items()})
    (tmp_path / "loader.py").write_text(LOADER)

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "loader.py", str(folder), "inputs.npz", "outputs.npz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    assert "astromer_hf" not in str(outputs["module"])  # the class came from the folder's own code
    with torch.no_grad():
        expected = model(**batch)
    np.testing.assert_array_equal(outputs["embedding"], expected.last_hidden_state.numpy())
    np.testing.assert_array_equal(outputs["reconstruction"], expected.reconstruction.numpy())
    assert int(outputs["n_classes"]) == 5
    assert "astromer_hf" not in str(outputs["processor_module"]) and int(outputs["window_size"]) == 120
    curves = [np.column_stack([np.arange(n) * 1.7 + 50000.0, np.sin(np.arange(n)), np.full(n, 0.05)]) for n in (30, 250)]
    expected_windows = processor(curves, mask=True, seed=3)
    for key, value in expected_windows.items():
        np.testing.assert_array_equal(outputs[f"processed_{key}"], value.numpy())
