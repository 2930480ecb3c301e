"""One function per experiment (paper table or figure), each returning pandas DataFrames."""

from .compare import RESULT_COLUMNS, compare_models, summarize, summary_table
from .profiles import PROFILES, Profile, get_profile
from .quickstart import label_correlation, label_summary, split_sizes
from .single_run import load_for_profile, train_config, train_one

__all__ = [
    "PROFILES", "Profile", "RESULT_COLUMNS", "compare_models", "get_profile", "label_correlation",
    "label_summary", "load_for_profile", "split_sizes", "summarize", "summary_table",
    "train_config", "train_one",
]
