"""A saved model's forward pass for serving: ONNX on plain tensors, and the encoding beside it as JSON.

A serving system encodes its rows with the saved model's encoding (`serving_json`: per categorical
input its vocabulary, code k + 1 for `values[k]` and 0 for anything else; per numeric input
x̃ = (x − mean) / std, a missing value as the mean, an indicator input where the model has one) and
feeds the graph

    tabular:      cat [B, C] int64, num [B, N] float32  →  predictions [B, Σ width]
    (with multi-valued fields also bags [B, F, L] int64: codes + 1, 0 = padding)
    recommender:  users [U] int64 (codes: the index of the id in `ids.users`)  →  scores [U, items]

The predictions are `data.task_kinds.outputs`: a binary task's probability, a regression task's value in
its units, a multi-class task's class probabilities; `columns` in the JSON names them. ONNX (the
`onnx` and `onnxruntime` packages, the `export` extra) is what serving stacks read; we write it with
`torch.onnx.export` rather than a graph of our own.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from ..data.tabular import Batch
from ..data.task_kinds import outputs


class TabularForward(torch.nn.Module):
    """A tabular model's predictions from plain tensors (what the ONNX graph computes)."""

    def __init__(self, model, kinds):
        super().__init__()
        self.model, self.kinds = model, tuple(kinds)

    def forward(self, cat: torch.Tensor, num: torch.Tensor, bags: torch.Tensor | None = None) -> torch.Tensor:
        return outputs(self.model(Batch(cat, num, bags)), self.kinds)


class RecommenderForward(torch.nn.Module):
    """A recommender's scores of every item for the given user codes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.model.scores(users)


def serving_json(saved) -> dict:
    """What a serving system needs beside the graph: the inputs' encoding, the output columns, the
    task kinds, a recommender's ids, and where the model came from."""
    info = saved.info
    return {
        "inputs": (
            ["users"] if saved.recommender else ["cat", "num"] + (["bags"] if info["spec"]["bag_names"] else [])
        ),
        "columns": [] if saved.recommender else _output_columns(saved),
        "cat": [] if saved.recommender else info["spec"]["cat_names"],  # the columns of cat, in order
        "num": [] if saved.recommender else info["spec"]["num_names"],  # of num (indicator inputs "NAME (missing)")
        "tasks": info["tasks"],
        "kinds": info["kinds"],
        "encoding": info["encoding"],
        "ids": info["ids"],
        "model": info["model"],
        "dataset": info["dataset"],
        "versions": info["versions"],
    }


def _output_columns(saved) -> list[str]:
    """The graph's output columns: a binary or regression task's name, a multi-class task's `TASK=CLASS`."""
    out = []
    for task, kind in zip(saved.tasks, saved.kinds):
        out += [f"{task}={c}" for c in kind.classes] if kind.kind == "multiclass" else [task]
    return out


def example_inputs(saved, rows: int = 4) -> tuple[torch.Tensor, ...]:
    """Valid inputs of the graph for `rows` rows (codes 0, the unknown code; numbers 0, the means)."""
    spec = saved.info["spec"]
    if saved.recommender:
        return (torch.arange(min(rows, spec["n_users"]), dtype=torch.int64),)
    cat = torch.zeros(rows, len(spec["cat_names"]), dtype=torch.int64)
    num = torch.zeros(rows, len(spec["num_names"]), dtype=torch.float32)
    if spec["bag_names"]:
        return cat, num, torch.zeros(rows, len(spec["bag_names"]), 2, dtype=torch.int64)
    return cat, num


def forward_module(saved) -> torch.nn.Module:
    return RecommenderForward(saved.model) if saved.recommender else TabularForward(saved.model, saved.kinds)


def export_onnx(saved, path: str | Path) -> Path:
    """Write the saved model's forward pass (module docstring) as an ONNX graph with a dynamic batch
    size. Raises ValueError naming the extra to install when onnx / onnxscript are missing."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"ONNX export needs the export extra ({err.name} is missing): pip install -e '.[export]'"
        ) from err
    path = Path(path)
    module = forward_module(saved).cpu().eval()
    inputs = example_inputs(saved)
    names = ["users"] if saved.recommender else ["cat", "num", "bags"][: len(inputs)]
    batch = torch.export.Dim("batch", min=1)
    shapes = {name: {0: batch} for name in names}
    if len(inputs) == 3:
        shapes["bags"] = {0: batch, 2: torch.export.Dim("bag_length", min=1)}
    from .saved import one_writer

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed": nothing mtlab exports needs it
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's exporter about its own internals
            warnings.filterwarnings("ignore", message=".*axis name.*")
            program = torch.onnx.export(
                module,
                inputs,
                input_names=names,
                output_names=["scores" if saved.recommender else "predictions"],
                dynamic_shapes=shapes,
                dynamo=True,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    with one_writer(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        try:
            program.save(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path
