"""AliExpress: the published per-country CSVs (generated here in their exact layout) prepared in two
vectorized streaming passes, damaged lines reported with their line numbers and skipped, reruns that do
nothing, and the shards trained on by the funnel models through the command line."""

import json
import os

import pytest
import torch

from mtlab.cli import main as cli
from mtlab.data import DataError, load_dataset
from mtlab.data.__main__ import main as data_cli
from mtlab.data.converters.aliexpress import (
    CATEGORICAL,
    COLUMNS,
    NUMERICAL,
    PrepareSettings,
    generate_raw,
    prepare,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("aliexpress")
    planted = generate_raw(root / "raw", "ES", n_impressions=6000, damaged=2)
    manifest = prepare(root / "raw", "ES", root / "data" / "aliexpress-es", PrepareSettings(min_count=2), quiet=True)
    return root, planted, manifest


def test_prepare_encodes_every_valid_row_and_reports_the_damaged_ones(prepared):
    root, planted, manifest = prepared
    assert sum(manifest["rows"].values()) == 6000  # the 2 × 3 damaged lines of each file are not rows
    assert manifest["malformed_lines"] == 12
    train_lines = 6000 - 1200 + 1  # the header is line 1
    assert manifest["malformed"]["train.csv: wrong number of fields (of 82)"] == {
        "lines": 2,
        "first_line_numbers": [train_lines + 1, train_lines + 4],
    }
    assert manifest["malformed"]["train.csv: a numeric field that is not a number"]["first_line_numbers"] == [
        train_lines + 2,
        train_lines + 5,
    ]
    assert manifest["malformed"]["test.csv: conversion without click"]["lines"] == 2
    assert 0.05 < manifest["rows"]["valid"] / (manifest["rows"]["train"] + manifest["rows"]["valid"]) < 0.15
    assert abs(manifest["label_rates"]["train"]["click"] - planted["click_rate"]) < 0.03
    assert manifest["single_fields"] == list(CATEGORICAL) and manifest["numeric_fields"] == list(NUMERICAL)
    assert set(manifest["inputs"]) == {"AliExpress_ES/train.csv", "AliExpress_ES/test.csv"}
    again = prepare(root / "raw", "ES", root / "data" / "aliexpress-es", PrepareSettings(min_count=2), quiet=True)
    assert again["up_to_date"]


def test_the_data_load_by_name_with_the_funnel_tasks(prepared, monkeypatch):
    root, _, manifest = prepared
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root / "data"))
    data = load_dataset("aliexpress-es")
    assert data.tasks == ("ctr", "cvr", "ctcvr") and data.features.n_cat == 16 and data.features.n_num == 63
    assert len(data.train) == manifest["rows"]["train"]
    clicked = data.train.labels[:, 0] == 1
    assert data.train.labels[~clicked, 1].isnan().all() and not data.train.labels[clicked, 1].isnan().any()
    assert (data.train.cat.max(0).values < torch_tensor(data.features.cat_cardinalities)).all()


def torch_tensor(values):
    import torch

    return torch.tensor(values)


def test_train_esmm_on_aliexpress_through_the_command_line(prepared, monkeypatch, tmp_path):
    root, _, _ = prepared
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root / "data"))
    out = tmp_path / "esmm.json"
    assert (
        cli(
            [
                "train",
                "--data",
                "aliexpress-es",
                "--model",
                "esmm",
                "--epochs",
                "4",
                "--batch-size",
                "128",
                "--subsample",
                "1",
                "--stream",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["test"]["ctr"]["auc"] > 0.6  # the planted click signal is learnt


def test_wrong_files_say_what_to_do(tmp_path, capsys):
    with pytest.raises(DataError, match="lacks AliExpress_NL/train.csv.*tianchi.aliyun.com/dataset/74690"):
        prepare(tmp_path, "NL", quiet=True)
    with pytest.raises(DataError, match="country 'XX'.*NL, ES, FR, US, RU"):
        prepare(tmp_path, "XX", quiet=True)
    (tmp_path / "train.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "test.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="header is not the published"):
        prepare(tmp_path, "NL", tmp_path / "out", quiet=True)
    assert data_cli(["prepare", "aliexpress", "--raw", str(tmp_path), "--country", "NL"]) == 1
    assert "error: " in capsys.readouterr().err
    assert len(COLUMNS) == 82


def test_preparing_is_a_transaction_that_never_removes_what_it_did_not_write(tmp_path, monkeypatch):
    """Issue: `prepare --out d` deleted every *.parquet in d; a failed re-prepare left a manifest naming
    deleted shards; two prepares into one folder both said "prepared"; a read-only --out gave a traceback."""
    import fcntl
    import os

    import mtlab.data.converters.aliexpress as converter

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=2)
    settings = PrepareSettings(min_count=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "any.parquet").write_bytes(b"the user's own file")
    with pytest.raises(DataError, match="not a preparation of mtlab's"):
        prepare(tmp_path / "raw", "NL", mine, settings, quiet=True)
    assert (mine / "any.parquet").read_bytes() == b"the user's own file"

    out = tmp_path / "prep"
    first = prepare(tmp_path / "raw", "NL", out, settings, quiet=True)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    (tmp_path / "raw" / "AliExpress_NL" / "test.csv").open("a").write("\n")  # the inputs changed: prepare again …

    def failing(*args, **kwargs):
        raise RuntimeError("the disk filled up")  # … and fail half-way

    monkeypatch.setattr(converter, "_encode", failing)
    with pytest.raises(RuntimeError, match="disk filled up"):
        prepare(tmp_path / "raw", "NL", out, settings, quiet=True)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # the old preparation, whole
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".prep.") and f.is_dir()]
    monkeypatch.undo()
    assert len(load_dataset_at(out).train) == first["rows"]["train"]

    with open(tmp_path / ".prep.lock", "w") as held:  # another prepare of the same folder is running
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DataError, match="another process is preparing"):
            prepare(tmp_path / "raw", "NL", out, settings, quiet=True)

    (out / "notes.txt").write_text("mine")  # a file of the user's inside a preparation: kept, and said
    with pytest.raises(DataError, match=r"did not write \(notes.txt\)"):
        prepare(tmp_path / "raw", "NL", out, settings, quiet=True)
    (out / "notes.txt").unlink()
    again = prepare(tmp_path / "raw", "NL", out, settings, quiet=True)
    assert not again["up_to_date"] and sorted(f.name for f in out.iterdir()) == sorted(before)

    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(DataError, match="choose a writable --out"):
            prepare(tmp_path / "raw", "NL", locked / "prep", settings, quiet=True)


def load_dataset_at(folder):
    from mtlab.data.funnel_shards import load_funnel

    return load_funnel(folder, in_memory=True)


def test_huge_numbers_are_malformed_and_bad_manifests_or_shards_are_named(tmp_path):
    """Issue: 1e300 was stored as +inf (then training "diverged"); shard names such as ../x.parquet were
    read outside the folder; a manifest of {} or a shard of another preparation gave tracebacks or
    trained silently; generate accepted --impressions -5."""
    import shutil

    from mtlab.data.funnel_shards import load_funnel

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=3)
    train = tmp_path / "raw" / "AliExpress_NL" / "train.csv"
    fields = ["1"] * len(COLUMNS)
    fields[COLUMNS.index("numerical_7")] = "1e300"
    train.open("a").write(",".join(fields[:-2] + ["0", "0"]) + "\n")
    manifest = prepare(tmp_path / "raw", "NL", tmp_path / "prep", PrepareSettings(min_count=1), quiet=True)
    assert manifest["malformed"]["train.csv: a numeric field beyond float32's range (±3.4e38)"]["lines"] == 1
    data = load_funnel(tmp_path / "prep", in_memory=True)
    assert torch_isfinite(data.train.num) and torch_isfinite(data.valid.num)

    folder = tmp_path / "prep"
    saved = (folder / "manifest.json").read_text()
    for broken, said in (
        ({}, "it lacks rows"),
        ([1, 2], "it holds a list"),
        ({**json.loads(saved), "shards": {"train": ["../x.parquet"], "valid": [], "test": []}}, "not the converter's"),
        ({**json.loads(saved), "shards": ["train-00000.parquet"]}, "must map each split"),
        ({**json.loads(saved), "vocab_sizes": dict.fromkeys(json.loads(saved)["vocab_sizes"], "12")}, "positive whole"),
        ({**json.loads(saved), "rows": {"train": "9", "valid": 1, "test": 1}}, "no train shards or row count"),
        ({**json.loads(saved), "numeric_fields": 3}, "must be a list of field names"),
        ({k: v for k, v in json.loads(saved).items() if k != "shard_sha256"}, "prepared by an older mtlab"),
    ):
        (folder / "manifest.json").write_text(json.dumps(broken))
        with pytest.raises(DataError, match=said):
            load_funnel(folder)
    (folder / "manifest.json").write_text(saved)
    other = tmp_path / "other"
    generate_raw(tmp_path / "raw2", "NL", n_impressions=800, seed=4)
    prepare(tmp_path / "raw2", "NL", other, PrepareSettings(min_count=1), quiet=True)
    shutil.copy(other / "train-00000.parquet", folder / "train-00000.parquet")  # another preparation's shard
    with pytest.raises(DataError, match="train-00000.parquet is not the file this folder's manifest lists"):
        load_funnel(folder, in_memory=False)
    # a shard of the same row count and size, other values (a foreign shard the row counts cannot tell)
    shard = folder / "train-00000.parquet"
    import pyarrow.parquet as pq

    prepare(tmp_path / "raw", "NL", tmp_path / "prep2", PrepareSettings(min_count=1), quiet=True)
    table = pq.read_table(tmp_path / "prep2" / "train-00000.parquet")
    pq.write_table(table.set_column(0, table.schema[0].name, table.column(0)[::-1]), shard)
    with pytest.raises(DataError, match="its sha256 differs"):
        load_funnel(folder, in_memory=False)
    # bit rot: bytes flipped inside the data, size and modification time kept (the stamp cannot see it),
    # caught by the pages' CRC as the row group is read
    shutil.copy2(tmp_path / "prep2" / "train-00000.parquet", tmp_path / "prep2" / "keep.parquet")
    rot = tmp_path / "prep2" / "train-00000.parquet"
    load_funnel(tmp_path / "prep2", in_memory=False)  # checked and stamped
    info, raw = rot.stat(), bytearray(rot.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    rot.write_bytes(bytes(raw))
    os.utime(rot, ns=(info.st_atime_ns, info.st_mtime_ns))
    data = load_funnel(tmp_path / "prep2", in_memory=False)
    with pytest.raises(DataError, match="train-00000.parquet is damaged"):
        for _ in data.train.batches(256, torch.Generator().manual_seed(0)):
            pass
    with pytest.raises(DataError, match="train-00000.parquet is damaged"):
        load_funnel(tmp_path / "prep2", in_memory=True)
    (folder / "train-00000.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(DataError, match="train-00000.parquet is not the file .* prepare again"):
        load_funnel(folder, in_memory=False)
    with pytest.raises(DataError, match="impressions"):
        generate_raw(tmp_path / "raw3", "NL", n_impressions=-5)


def torch_isfinite(values) -> bool:
    import torch

    return bool(torch.isfinite(values).all())


def test_unreadable_raw_files_stop_with_a_line_that_says_what_to_do(tmp_path):
    """Issue: an empty raw CSV, gzip bytes under .csv and another separator gave tracebacks or "prepared"
    0 rows; a header with a byte order mark (as Excel writes it) was refused."""
    import gzip

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=5)
    folder = tmp_path / "raw" / "AliExpress_NL"
    text = (folder / "train.csv").read_bytes()
    (folder / "train.csv").write_bytes(b"\xef\xbb\xbf" + text)  # a BOM: read alike
    assert prepare(tmp_path / "raw", "NL", tmp_path / "bom", PrepareSettings(min_count=1), quiet=True)["rows"]["train"]
    (folder / "train.csv").write_bytes(text.replace(b",", b";").replace(b";", b",", 81))  # header alike, rows ';'
    with pytest.raises(DataError, match="no valid row for the train, valid split: all .* lines read were malformed"):
        prepare(tmp_path / "raw", "NL", tmp_path / "semicolons", PrepareSettings(min_count=1), quiet=True)
    (folder / "train.csv").write_bytes(gzip.compress(text))
    with pytest.raises(DataError, match="gzip-compressed but named train.csv"):
        prepare(tmp_path / "raw", "NL", tmp_path / "gz", PrepareSettings(min_count=1), quiet=True)
    (folder / "train.csv").write_bytes(text.split(b"\n")[0] + b"\n")  # the header alone
    with pytest.raises(DataError, match="no valid row for the train, valid split: the raw file holds no rows"):
        prepare(tmp_path / "raw", "NL", tmp_path / "empty", PrepareSettings(min_count=1), quiet=True)
    assert not (tmp_path / "empty").exists() and not (tmp_path / "semicolons").exists()
    (folder / "train.csv").write_bytes(text)
    (folder / "test.csv").write_bytes(b"")  # 0 bytes: said so, not "the header is not the published one"
    with pytest.raises(DataError, match=r"test.csv is empty \(0 bytes\)"):
        prepare(tmp_path / "raw", "NL", tmp_path / "empty", PrepareSettings(min_count=1), quiet=True)


def test_a_raw_file_edited_in_place_with_its_size_and_time_kept_is_prepared_again(tmp_path):
    import os
    import time

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=6)
    settings = PrepareSettings(min_count=1)
    assert not prepare(tmp_path / "raw", "NL", tmp_path / "prep", settings, quiet=True)["up_to_date"]
    assert prepare(tmp_path / "raw", "NL", tmp_path / "prep", settings, quiet=True)["up_to_date"]
    path = tmp_path / "raw" / "AliExpress_NL" / "test.csv"
    before = path.stat()
    text = path.read_bytes()
    time.sleep(0.01)
    path.write_bytes(text.replace(b"\n1,", b"\n0,", 1) if b"\n1," in text else text[:-2] + b"0\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the modification time set back
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert not prepare(tmp_path / "raw", "NL", tmp_path / "prep", settings, quiet=True)["up_to_date"]


def test_a_users_folders_beside_out_and_a_symlinked_or_dot_out_are_kept(tmp_path, monkeypatch):
    """Review: prepare removed every folder named `.OUT.*` beside --out (a user's `.data.backup`); a
    symlinked --out was replaced by a folder; `--out .` locked itself out with its own lock file."""
    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=7)
    settings = PrepareSettings(min_count=1)
    backup = tmp_path / ".prep.backup"
    backup.mkdir()
    (backup / "important.txt").write_text("precious")
    prepare(tmp_path / "raw", "NL", tmp_path / "prep", settings, quiet=True)
    assert (backup / "important.txt").read_text() == "precious"

    (tmp_path / "big").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "big" / "prep")
    prepare(tmp_path / "raw", "NL", tmp_path / "link", settings, quiet=True)
    assert (tmp_path / "link").is_symlink() and (tmp_path / "big" / "prep" / "manifest.json").is_file()

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    prepare(tmp_path / "raw", "NL", ".", settings, quiet=True)
    assert (here / "manifest.json").is_file() and not (here / "..lock").exists()
    monkeypatch.chdir(here)  # the folder was replaced whole: a shell inside it is in the old one
    assert prepare(tmp_path / "raw", "NL", ".", settings, quiet=True)["up_to_date"]


def test_a_read_only_out_is_refused_and_a_mount_point_out_has_its_contents_swapped(tmp_path, monkeypatch):
    """Review: a read-only --out with a writable parent was replaced (its mode and owner lost); a mount
    point as --out failed with EBUSY on its rename after the whole conversion."""
    import stat

    from mtlab.data import download
    from mtlab.data.funnel_shards import load_funnel

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=8)
    settings = PrepareSettings(min_count=1)
    out = tmp_path / "prep"
    prepare(tmp_path / "raw", "NL", out, settings, quiet=True)
    out.chmod(0o555)
    try:
        with pytest.raises(DataError, match=r"prep is read-only \(mode dr-xr-xr-x\).*chmod u\+w"):
            prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=2), quiet=True)
    finally:
        out.chmod(0o755)
    out.chmod(0o750)
    prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=2), quiet=True)  # replaced, its mode kept
    assert stat.S_IMODE(out.stat().st_mode) == 0o750

    # a mount point cannot be renamed: the new version is made inside it and the contents swapped
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) == str(out) or real_ismount(p))
    renamed = []
    real_replace = download.os.replace

    def replace(src, dst):
        if str(src) == str(out):  # what the kernel answers for a mount point
            raise OSError(16, "Device or resource busy")
        renamed.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", replace)
    inode = out.stat().st_ino
    manifest = prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=3), quiet=True)
    assert out.stat().st_ino == inode and not manifest["up_to_date"]  # the same folder, new contents
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".verified.json"]  # nothing left
    data = load_funnel(out, in_memory=True)
    assert len(data.train) == manifest["rows"]["train"]
    assert prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=3), quiet=True)["up_to_date"]


def test_ctrl_c_during_prepare_and_generate_over_raw_files_are_clear_stops(tmp_path, monkeypatch, capsys):
    """Review: Ctrl-C during prepare ended in a KeyboardInterrupt traceback; generate wrote over raw files."""
    from mtlab.data.converters import aliexpress

    assert data_cli(["generate", "aliexpress", "--out", str(tmp_path / "raw"), "--impressions", "1000"]) == 0
    before = (tmp_path / "raw" / "AliExpress_NL" / "train.csv").read_bytes()
    capsys.readouterr()
    assert data_cli(["generate", "aliexpress", "--out", str(tmp_path / "raw"), "--impressions", "200"]) == 1
    assert "generate never writes over raw files" in capsys.readouterr().err
    assert (tmp_path / "raw" / "AliExpress_NL" / "train.csv").read_bytes() == before
    out = tmp_path / "prep"
    assert (
        data_cli(["prepare", "aliexpress", "--raw", str(tmp_path / "raw"), "--out", str(out), "--min-count", "1"]) == 0
    )
    manifest = (out / "manifest.json").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(aliexpress, "_encode", interrupted)
    args = ["prepare", "aliexpress", "--raw", str(tmp_path / "raw"), "--out", str(out), "--min-count", "2"]
    assert data_cli(args) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and "is as it was" in err and "Traceback" not in err
    assert (out / "manifest.json").read_text() == manifest  # the old preparation, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prep.") and p.is_dir()]  # no temporary left


def test_a_line_that_is_not_utf8_is_counted_and_skipped_not_the_whole_file(tmp_path):
    """Issue: one invalid UTF-8 byte aborted the whole prepare (after deleting the old shards)."""
    generate_raw(tmp_path / "raw", "NL", n_impressions=1000, seed=9)
    path = tmp_path / "raw" / "AliExpress_NL" / "train.csv"
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\n", 5000) + 3
    raw[at] = 0xFF
    path.write_bytes(bytes(raw))
    line = raw[:at].count(b"\n") + 1
    manifest = prepare(tmp_path / "raw", "NL", tmp_path / "prep", PrepareSettings(min_count=1), quiet=True)
    assert manifest["malformed"]["train.csv: not UTF-8 text"] == {"lines": 1, "first_line_numbers": [line]}
    lines = raw.count(b"\n") - 1  # the header is not a row
    assert manifest["rows"]["train"] + manifest["rows"]["valid"] == lines - 1 - sum(
        v["lines"] for k, v in manifest["malformed"].items() if k.startswith("train.csv") and "UTF-8" not in k
    )


def test_edited_vocabularies_and_a_preparation_replaced_under_a_reader_are_stops(tmp_path):
    """Review: an edited vocab.json gave silently wrong predictions (the saved encoding maps raw values
    by it); a prepare while a streamed run read the folder made its later epochs read other shards."""
    from mtlab.data.funnel_shards import load_funnel

    generate_raw(tmp_path / "raw", "NL", n_impressions=1500, seed=10)
    out = tmp_path / "prep"
    prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=1), quiet=True)
    vocab = json.loads((out / "vocab.json").read_text())
    (out / "vocab.json").write_text(json.dumps({k: v[::-1] for k, v in vocab.items()}))
    with pytest.raises(DataError, match="vocab.json is not the file this folder's manifest lists"):
        load_funnel(out)
    prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=2), quiet=True)  # repaired
    data = load_funnel(out, in_memory=False)
    batches = data.train.batches(256, torch.Generator().manual_seed(0))
    next(batches)
    prepare(tmp_path / "raw", "NL", out, PrepareSettings(min_count=3), quiet=True)  # meanwhile, prepared again
    with pytest.raises(DataError, match="was prepared again while this run read it"):
        list(data.train.batches(256, torch.Generator().manual_seed(1)))
