"""Packaging: the core install (models, processor, converter) needs none of the optional extras."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from blocked_package import block_modules

ROOT = Path(__file__).resolve().parents[1]
#: What `pip install astromer_hf[train]` / `[data]` add, and the core must not need.
EXTRAS_ONLY = ("lightning", "wandb", "torchmetrics", "jsonargparse", "matplotlib", "datasets")


def test_the_core_requirements_leave_the_training_and_data_stacks_to_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for name in EXTRAS_ONLY:
        assert name not in core, name
    extras = project["optional-dependencies"]
    assert {"train", "data", "dev"} <= set(extras)
    assert any(req.startswith("lightning") for req in extras["train"])
    assert any(req.startswith("datasets") for req in extras["data"])


def test_embedding_with_the_core_install_imports_no_optional_extra():
    script = block_modules(*EXTRAS_ONLY) + '''
import numpy as np, torch
import astromer_hf
from astromer_hf import AstromerConfig, AstromerModel, AstromerProcessor
model = AstromerModel(AstromerConfig.from_preset("astromer-1", num_hidden_layers=1)).eval()
rng = np.random.default_rng(0)
curve = np.column_stack([np.sort(rng.uniform(0, 300, 250)), rng.normal(15, 0.2, 250), rng.uniform(0.01, 0.1, 250)])
inputs = AstromerProcessor.from_model_config(model.config)([curve])
with torch.no_grad():
    out = model(inputs["magnitudes"], inputs["times"], attention_mask=inputs["attention_mask"])
print("embedded", tuple(out.last_hidden_state.shape))
'''
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded (2, 200, 256)" in result.stdout
