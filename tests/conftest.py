import numpy as np
import pytest
import torch

from mtlab.data import make_synthetic
from mtlab.data.census import COLUMNS, NUMERIC
from mtlab.data.download import accept_own_copy
from mtlab.data.interactions import make_synthetic_interactions

MARITAL = ["Never married", "Married-civilian spouse present", "Divorced", "Widowed"]
EDUCATION = ["High school graduate", "Children", "Bachelors degree(BA AB BS)", "Some college but no degree"]


def fake_census_rows(n: int, rng: np.random.Generator, unseen: bool = False) -> list[str]:
    """Rows in the raw Census-Income format (no header, ', ' separated)."""
    rows = []
    for i in range(n):
        values = []
        for col in COLUMNS:
            if col == "income":
                values.append("50000+." if rng.random() < 0.3 else "- 50000.")
            elif col == "marital_status":
                values.append(MARITAL[rng.integers(len(MARITAL))])
            elif col == "education":
                values.append(EDUCATION[rng.integers(len(EDUCATION))])
            elif col == "sex":
                values.append("Female" if rng.random() < 0.5 else "Male")
            elif col == "hispanic_origin":
                values.append("NA" if rng.random() < 0.5 else "All other")  # "NA" is a real category
            elif col == "instance_weight":
                values.append(f"{rng.uniform(100, 3000):.2f}")
            elif col in NUMERIC:
                values.append(str(int(rng.integers(0, 90))))
            elif col == "race" and unseen and i == 0:
                values.append("Unseen race")
            else:
                values.append("ABC"[rng.integers(3)])
        rows.append(", ".join(values))
    return rows


@pytest.fixture
def census_root(tmp_path):
    """A data folder holding small fake Census-Income files (the loader's format, not real data)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "census-income"
    folder.mkdir()
    (folder / "census_income_train.csv").write_text("\n".join(fake_census_rows(300, rng)) + "\n")
    (folder / "census_income_test.csv").write_text("\n".join(fake_census_rows(200, rng, unseen=True)) + "\n")
    accept_own_copy("census-income", tmp_path)  # not the published files: accepted, as a user would
    return tmp_path


@pytest.fixture(scope="session")
def synthetic():
    return make_synthetic(n_samples=4000, rho=0.8, dim=16, n_cat=3, seed=0)


@pytest.fixture(scope="session")
def tabular():
    """Three synthetic binary tasks, small: for tests that go through every model or strategy."""
    return make_synthetic(n_samples=900, n_tasks=3, seed=0)


@pytest.fixture(scope="session")
def interactions():
    """Planted-community interactions with every side information: the recommender's small case."""
    return make_synthetic_interactions(n_users=150, n_items=120, p_in=0.2, seed=0)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def funnel(tmp_path_factory):
    """Generated Ali-CCP raw files, prepared, in memory: the funnel models' small case."""
    from mtlab.data.converters.aliccp import PrepareSettings, generate_raw, prepare
    from mtlab.data.funnel_shards import load_aliccp

    root = tmp_path_factory.mktemp("funnel")
    generate_raw(root / "raw", n_impressions=8000, n_users=150, n_items=60, seed=0)
    prepare(root / "raw", root / "prep", PrepareSettings(min_count=1, row_group_rows=1024, shard_rows=2000), quiet=True)
    return load_aliccp(root / "prep", in_memory=True)
