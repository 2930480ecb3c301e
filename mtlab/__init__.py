"""mtlab: a workbench for multi-task learning in recommender systems."""

import os

# OpenMP threads that wait at a barrier sleep instead of spinning (set before torch loads OpenMP;
# a value already in the environment wins, and "" restores OpenMP's own default). On a small machine
# shared with other training processes, spinning threads fight them for the same cores: beside two,
# 00_quickstart's quick profile ran 8.1× slower with OpenMP's default and 1.04× with PASSIVE; quiet,
# the two are within noise (benchmarks/notebook_under_load.py; docs/benchmarks.md).
if not os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE"):
    del os.environ["OMP_WAIT_POLICY"]  # "" asks for OpenMP's default (libgomp rejects an empty value)

__version__ = "0.1.0"


def load_model(path, device: str = "auto"):
    """A model saved with `mtlab train --save-model FILE` or `result.save(FILE)`, ready to `predict(frame)`
    (mtlab.train.saved.load_model; imported here on first use, so `import mtlab` stays light)."""
    from .train.saved import load_model as load

    return load(path, device)
