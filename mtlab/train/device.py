"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU is an error, not a silent CPU run."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for, but no CUDA device is available; use device='auto' or 'cpu'"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} (or 'cuda:N')")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so model initialization is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
