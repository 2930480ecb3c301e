"""One function per experiment (paper table or figure), each returning pandas DataFrames."""

from .artifacts import keep, output_path, titled
from .compare import RESULT_COLUMNS, compare_models, summarize, summary_table
from .profiles import PROFILES, Profile, get_profile
from .quickstart import label_correlation, label_summary, split_sizes
from .single_run import load_for_profile, train_config, train_one, train_seeds
from .table2 import (
    DISPLAY_NAMES,
    PAPER_TABLE2,
    TABLE2_MODELS,
    TABLE2_TASKS,
    beside_paper,
    check_models,
    correlation_statement,
    ordering_agreement,
    ordering_statement,
    paired_p,
    paper_settings,
    significance,
    synthetic_correlation_study,
)

__all__ = [
    "DISPLAY_NAMES",
    "PAPER_TABLE2",
    "PROFILES",
    "Profile",
    "RESULT_COLUMNS",
    "TABLE2_MODELS",
    "TABLE2_TASKS",
    "beside_paper",
    "check_models",
    "compare_models",
    "correlation_statement",
    "get_profile",
    "label_correlation",
    "label_summary",
    "load_for_profile",
    "ordering_agreement",
    "ordering_statement",
    "paired_p",
    "paper_settings",
    "significance",
    "split_sizes",
    "summarize",
    "summary_table",
    "synthetic_correlation_study",
    "keep",
    "titled",
    "output_path",
    "train_config",
    "train_one",
    "train_seeds",
]
