"""Ali-CCP: raw files in the exact layout (generated), prepared into Parquet shards by streaming
passes, damaged lines reported and skipped, reruns that do nothing, and the shards read back in
shuffled batches with a bounded buffer."""

import json

import pytest
import torch
from torch import nn

from mtlab.data import DataError
from mtlab.data.__main__ import main as data_cli
from mtlab.data.converters.aliccp import (
    BAG_FIELDS,
    SINGLE_FIELDS,
    PrepareSettings,
    generate_raw,
    parse_features,
    prepare,
)
from mtlab.data.funnel_shards import ShardedSplit, load_manifest


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("aliccp")
    planted = generate_raw(root / "raw", n_impressions=3000, n_users=300, n_items=200, damaged=2)
    settings = PrepareSettings(min_count=2, row_group_rows=256, shard_rows=1000)
    manifest = prepare(root / "raw", root / "prep", settings, quiet=True)
    return root, planted, settings, manifest


def test_feature_lists_parse_and_refuse_a_missing_separator():
    assert parse_features("101\x02u1\x031.0\x01509\x02o1\x031\x01509\x02o2\x031") == {
        "101": ["u1"],
        "509": ["o1", "o2"],
    }
    assert parse_features("101u1\x031.0") is None
    assert parse_features("101\x02u1") is None


def test_prepare_writes_shards_vocabularies_and_a_manifest(prepared):
    root, planted, settings, manifest = prepared
    assert not manifest["up_to_date"]
    assert sum(manifest["rows"].values()) == 3000 - 12  # 2 of each of 3 kinds, in both skeleton files
    assert manifest["malformed_lines"] == 12
    reasons = manifest["malformed"]
    assert reasons["sample_skeleton_train.csv: wrong number of fields (of 6)"] == {
        "lines": 2,
        "first_line_numbers": [1, 4],
    }
    assert reasons["sample_skeleton_test.csv: unknown common_feature_index"]["first_line_numbers"] == [3, 6]
    assert 0.05 < manifest["rows"]["valid"] / (manifest["rows"]["train"] + manifest["rows"]["valid"]) < 0.15
    assert len(manifest["shards"]["train"]) >= 2  # shard_rows = 1000
    rates = manifest["label_rates"]
    assert abs(rates["train"]["click"] - planted["click_rate"]) < 0.05
    assert all(r["conversion"] <= r["click"] for r in rates.values())
    assert set(manifest["inputs"]) == {
        "sample_skeleton_train.csv",
        "common_features_train.csv",
        "sample_skeleton_test.csv",
        "common_features_test.csv",
    }
    assert all(len(v["sha256"]) == 64 for v in manifest["inputs"].values())
    vocab = json.loads((root / "prep" / "vocab.json").read_text())
    assert manifest["vocab_sizes"]["101"] == len(vocab["101"]) + 1 and manifest["vocab_sizes"]["509"] == 5


def test_a_rerun_does_nothing_and_other_settings_convert_again(prepared, tmp_path):
    root, _, settings, manifest = prepared
    again = prepare(root / "raw", root / "prep", settings, quiet=True)
    assert again["up_to_date"] and again["rows"] == manifest["rows"]
    other = prepare(root / "raw", tmp_path / "prep", PrepareSettings(min_count=1000), quiet=True)
    assert not other["up_to_date"] and other["vocab_sizes"]["101"] == 1  # every user id in the unknown bucket


def test_missing_raw_files_and_a_damaged_manifest_say_what_to_do(tmp_path, capsys):
    with pytest.raises(DataError, match="lacks the Ali-CCP file.*tianchi.aliyun.com/dataset/408.*generate ali-ccp"):
        prepare(tmp_path, tmp_path / "out", quiet=True)
    assert data_cli(["prepare", "ali-ccp", "--raw", str(tmp_path)]) == 1
    assert "error: " in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text("{ cut")
    with pytest.raises(DataError, match="damaged.*prepare ali-ccp"):
        load_manifest(tmp_path)
    with pytest.raises(DataError, match="no prepared data.*prepare ali-ccp"):
        load_manifest(tmp_path / "nowhere")


def test_streamed_batches_visit_every_row_once_in_a_seeded_order_with_a_bounded_buffer(prepared):
    root, _, _, manifest = prepared
    split = ShardedSplit(root / "prep", "train", buffer_rows=600)
    epochs = []
    for seed in (0, 0, 1):
        batches = list(split.batches(128, torch.Generator().manual_seed(seed)))
        assert all(len(b) == 128 for b in batches[:-1]) and sum(len(b) for b in batches) == manifest["rows"]["train"]
        epochs.append(torch.cat([b.labels for b in batches]))
        assert batches[0].single.shape[1] == len(SINGLE_FIELDS) and set(batches[0].bags) == set(BAG_FIELDS)
    assert torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[0], epochs[2])
    assert epochs[0][:, 0].sum() == epochs[2][:, 0].sum()  # the same rows, in another order
    assert split.largest_buffer < 600 + 256  # the buffer, plus at most one row group


def test_bags_feed_an_embedding_bag(prepared):
    root, _, _, manifest = prepared
    batch = next(ShardedSplit(root / "prep", "test").batches(64, shuffle=False))
    values, offsets = batch.bags["509"]
    assert len(offsets) == 64 and len(values) == 2 * 64  # two cross ids per generated impression
    bag = nn.EmbeddingBag(manifest["vocab_sizes"]["509"], 4, mode="mean")
    assert bag(values, offsets).shape == (64, 4)
    assert (batch.labels[:, 1] <= batch.labels[:, 0]).all()  # conversion only after a click


def test_the_vectorized_conversion_encodes_each_line_as_the_line_by_line_reading_would(prepared):
    """Every valid test line, read with `parse_features` and the vocabularies by hand, equals its row
    in the test shard (the test split keeps the file's order)."""
    root, _, settings, _ = prepared
    vocab = json.loads((root / "prep" / "vocab.json").read_text())
    code = {f: {fid: i + 1 for i, fid in enumerate(ids)} for f, ids in vocab.items()}
    users = {}
    for line in (root / "raw" / "common_features_test.csv").read_text().splitlines():
        index, _, text = line.split(",", 2)
        users[index] = parse_features(text)
    expected = []
    for line in (root / "raw" / "sample_skeleton_test.csv").read_text().splitlines():
        parts = line.split(",", 5)
        fields = parse_features(parts[5]) if len(parts) == 6 else None
        if fields is None or parts[3] not in users:
            continue
        fields = {**users[parts[3]], **fields}
        single = [code[f].get(fields[f][0], 0) if f in fields else 0 for f in SINGLE_FIELDS]
        bags = {f: [code[f].get(x, 0) for x in fields.get(f, [])[: settings.max_bag]] for f in BAG_FIELDS}
        expected.append((int(parts[1]), int(parts[2]), single, bags))
    rows = [batch for batch in ShardedSplit(root / "prep", "test").batches(10_000, shuffle=False)][0]
    assert len(rows) == len(expected)
    for k in range(0, len(expected), 37):
        click, conversion, single, bags = expected[k]
        assert rows.labels[k].tolist() == [click, conversion]
        assert rows.single[k].tolist() == single
        for f in BAG_FIELDS:
            values, offsets = rows.bags[f]
            end = offsets[k + 1] if k + 1 < len(offsets) else len(values)
            assert values[offsets[k] : end].tolist() == bags[f], f


def test_prefetching_keeps_the_order_raises_the_readers_error_and_stops_when_left():
    from mtlab.data.funnel_shards import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise DataError("shard 3 is damaged")

    got = []
    with pytest.raises(DataError, match="shard 3"):
        for item in prefetched(broken()):
            got.append(item)
    assert got == [1]
    produced = []

    def counting():
        for k in range(10_000):
            produced.append(k)
            yield k

    stream = prefetched(counting(), depth=2)
    assert next(stream) == 0
    stream.close()  # the consumer leaves: the reader stops instead of reading everything
    assert len(produced) < 10


def test_streamed_data_honour_the_subsample_and_open_each_shard_once_an_epoch(prepared, tmp_path):
    """Issue: `--stream --subsample 0.01` trained on every row without a word; each row group reopened its
    shard (quadratic in row groups: hours for one epoch of tiny groups)."""
    from mtlab.data.funnel_shards import load_aliccp

    root, _, _, manifest = prepared
    whole = load_aliccp(root / "prep", in_memory=False)
    part = whole.subsample(0.3, seed=0)
    assert part.streamed and 0.3 * len(whole.train) <= len(part.train) < 0.3 * len(whole.train) + 256
    rows = sum(len(b) for b, _ in part.train.batches(100, torch.Generator().manual_seed(0)))
    assert rows == len(part.train) and len(part.train.all_labels()) == len(part.train)
    again = whole.subsample(0.3, seed=0).train.all_labels()  # seeded: the same row groups
    assert torch.equal(again.nan_to_num(-1), part.train.all_labels().nan_to_num(-1))
    shards = part.train.shards
    before = shards.opened
    list(shards.batches(64, torch.Generator().manual_seed(1)))
    assert shards.opened - before == len({path for path, _ in shards.row_groups})  # once per shard
    tiny = tmp_path / "tiny"
    prepare(root / "raw", tiny, PrepareSettings(min_count=2, row_group_rows=16, shard_rows=1000), quiet=True)
    with pytest.warns(UserWarning, match="row groups under 128 rows"):
        ShardedSplit(tiny, "train")


def test_a_subsample_whole_row_groups_cannot_honour_is_said(prepared, tmp_path):
    """A streamed split of one row group kept every row for --subsample 0.1 without a word."""
    from mtlab.data.funnel_shards import load_aliccp

    root, _, _, _ = prepared
    one = tmp_path / "one-group"
    prepare(root / "raw", one, PrepareSettings(min_count=2, row_group_rows=65_536, shard_rows=100_000), quiet=True)
    whole = load_aliccp(one, in_memory=False)
    with pytest.warns(UserWarning, match=r"keeps .* by whole row groups.*smaller --row-group-rows"):
        part = whole.subsample(0.1, seed=0)
    assert len(part.train) == len(whole.train)  # what the warning says: the one group is kept whole


def test_tab_separated_files_stop_naming_the_likely_cause(tmp_path):
    """Issue: tab-separated Ali-CCP files "prepared" with exit 0 and 0 rows; training then said "Must pass
    at least one table"."""
    generate_raw(tmp_path / "raw", n_impressions=1000, seed=3)
    for name in ("sample_skeleton_train.csv", "sample_skeleton_test.csv"):
        path = tmp_path / "raw" / name
        path.write_text(path.read_text().replace(",", "\t"))
    with pytest.raises(DataError, match=r"no valid row .*malformed \(another separator than the published one"):
        prepare(tmp_path / "raw", tmp_path / "prep", PrepareSettings(min_count=1), quiet=True)
    assert not (tmp_path / "prep").exists()
