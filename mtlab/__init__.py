"""mtlab: a workbench for multi-task learning in recommender systems."""

__version__ = "0.1.0"
