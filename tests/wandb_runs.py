"""Offline W&B runs read back, for the tests (see :mod:`astromer_hf.training.wandb_offline`)."""

from astromer_hf.training.wandb_offline import find_offline_runs, inspect_records, metric_values, read_offline_run

__all__ = ["find_offline_runs", "inspect_records", "metric_values", "read_offline_run"]
