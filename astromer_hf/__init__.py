"""Astromer on PyTorch and the Hugging Face stack."""
