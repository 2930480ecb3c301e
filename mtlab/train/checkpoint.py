"""Checkpoints written atomically (a crash mid-write never leaves a truncated file behind) and read
safely: `torch.load(weights_only=True)` unpickles tensors and plain containers only, so a crafted
file cannot run code."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: damaged, unsafe, or from another run."""


def save_checkpoint(state: dict, path: str | Path) -> None:
    """torch.save into a temporary file in the same folder, fsync, then rename over `path`.
    Temporary files an interrupted earlier write left behind are removed first."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a folder; give a file name, e.g. {path / 'run.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train without resume=True to start one")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} holds more than tensors and plain data, which mtlab does not "
            f"load (it could run code): {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} is damaged ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "delete it and train again, or train without --resume"
        ) from err
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} is not an mtlab checkpoint; delete it and train again")
    return saved
