"""Epoch-level masked-reconstruction metrics that add up over batches and devices exactly as over one big batch."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MaskedReconstructionMetrics(Metric):
    """Astromer's masked RMSE and R² (``docs/architecture.md``, "Heads") over all windows seen since the last reset.

    * ``rmse``: ``sqrt(mean_w MSE_w)``, the mean over windows of each window's MSE over its probed positions (windows
      with no probed position are left out), as the training loss computes it over one batch;
    * ``r2``: ``1 - Σ m (y - ŷ)² / Σ m (y - ȳ_w)²`` pooled over the windows, ȳ_w the mean over a window's probed
      positions;
    * ``baseline_rmse``: the RMSE of predicting 0, the window mean (the magnitudes are centred): a model that
      learned nothing scores about this.

    ``update(reconstruction, labels, loss_mask)`` takes ``[B, T]`` tensors (``loss_mask`` non-zero where the position
    enters the loss). The sums are synchronised across processes under DDP.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("mse_sum", "baseline_mse_sum", "windows", "residual_ss", "total_ss"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, reconstruction: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor) -> None:
        mask = (loss_mask != 0).to(torch.float64)
        prediction, target = reconstruction.detach().to(torch.float64), labels.detach().to(torch.float64)
        counts = mask.sum(dim=1)
        used = counts > 0
        safe_counts = counts.clamp_min(1.0)
        squared_error = ((target - prediction) ** 2 * mask).sum(dim=1)
        self.mse_sum += (squared_error / safe_counts)[used].sum()
        self.baseline_mse_sum += ((target**2 * mask).sum(dim=1) / safe_counts)[used].sum()
        self.windows += used.sum()
        window_mean = (target * mask).sum(dim=1, keepdim=True) / safe_counts[:, None]
        self.residual_ss += squared_error.sum()
        self.total_ss += ((target - window_mean) ** 2 * mask).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        windows = self.windows.clamp_min(1.0)
        return {
            "rmse": torch.sqrt(self.mse_sum / windows).float(),
            "r2": (1.0 - self.residual_ss / self.total_ss.clamp_min(torch.finfo(torch.float64).tiny)).float(),
            "baseline_rmse": torch.sqrt(self.baseline_mse_sum / windows).float(),
        }
