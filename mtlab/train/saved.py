"""A trained model as one self-contained file, and its predictions on new rows.

`save_model(path, model, data, report)` writes the reported (best-epoch) weights and, as JSON, all
that predicting needs and all that says where the model came from; `load_model(path)` reads it back
as a `SavedModel` whose `predict(frame)` encodes new rows exactly as training encoded its own
(`data.encoding.Encoding`) and gives one column per task.

The file is safetensors (a JSON header and raw tensors: reading it can never run code, unlike a
pickle): the tensors are the model's `state_dict` under "weights.<name>" (and a recommender's seen
pairs under "seen"); the header's metadata holds `format` ("mtlab-model"), `format_version`, `digest`
(sha256 of the document and the tensors: a file edited after saving is refused) and `mtlab`, the JSON
document:

    model, options      the registry name and the hyperparameters (`build_model(model, spec, tasks, **options)`)
    tasks, kinds        the task names in output order and each one's TaskKind (data.task_kinds)
    spec                the input sizes (FeatureSpec, or InteractionSpec for a recommender)
    encoding            the inputs' rules (vocabularies, numeric mean and std, missing values), or null
    ids                 a recommender's user and item ids (raw, as text), by code
    dataset             name, source folder, rows per split, the prepared data's fingerprint (version)
    training            the run's settings (seed, epochs, batch size, learning rate, weighting …)
    metrics             the reported validation and test metrics, best_epoch
    versions            mtlab, torch, Python; created (UTC)
"""

from __future__ import annotations

import glob
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.download import exclusive
from ..data.encoding import Encoding, as_text, check_distinct_columns
from ..data.interactions import InteractionSpec
from ..data.tabular import Batch, DataError, FeatureSpec
from ..data.task_kinds import TaskKind, columns, outputs
from .device import resolve_device

FORMAT = "mtlab-model"
FORMAT_VERSION = 1
PREDICT_BATCH = 65_536  # rows encoded and predicted at once (memory: this many rows of the input)
RANKING_CHUNK = 1024  # users scored at once (as the ranking evaluator does)


class ModelFileError(ValueError):
    """A file that is not a readable mtlab model of this format version; the message says what to do."""


def _versions() -> dict:
    import mtlab

    return {"mtlab": mtlab.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _spec_json(spec) -> dict:
    if isinstance(spec, InteractionSpec):
        return {
            "kind": "interactions",
            "n_users": spec.n_users,
            "n_items": spec.n_items,
            "n_categories": spec.n_categories,
            "attribute_sizes": [list(a) for a in spec.attribute_sizes],
        }
    return {
        "kind": "tabular",
        "cat_names": list(spec.cat_names),
        "cat_cardinalities": list(spec.cat_cardinalities),
        "num_names": list(spec.num_names),
        "bag_names": list(spec.bag_names),
        "bag_cardinalities": list(spec.bag_cardinalities),
        "vocab": {k: list(v) for k, v in spec.vocab.items()},
        "targets": {t: k.to_json() for t, k in spec.targets.items()},
    }


def _spec_from_json(value: dict):
    if value["kind"] == "interactions":
        return InteractionSpec(
            value["n_users"],
            value["n_items"],
            value["n_categories"],
            tuple((name, size) for name, size in value["attribute_sizes"]),
        )
    return FeatureSpec(
        cat_names=tuple(value["cat_names"]),
        cat_cardinalities=tuple(value["cat_cardinalities"]),
        num_names=tuple(value["num_names"]),
        vocab={k: tuple(v) for k, v in value["vocab"].items()},
        bag_names=tuple(value["bag_names"]),
        bag_cardinalities=tuple(value["bag_cardinalities"]),
        targets={t: TaskKind.from_json(k) for t, k in value["targets"].items()},
    )


def registry_name(model) -> str:
    """The name a model's class is registered under (models.MODELS)."""
    from ..models import MODELS

    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ModelFileError(f"{type(model).__name__} is not a registered model; register it to save it")


def save_model(path: str | Path, model, data, report: dict | None = None, training: dict | None = None) -> Path:
    """Write `model` (its weights as they are: after `fit`, the reported best epoch's) trained on `data`
    into one safetensors file at `path`, atomically (a temporary file beside it, renamed: a reader never
    sees half a file; two writers of one path leave one whole file). `report`: the run's JSON-shaped
    result (`train_one`), whose metrics are kept; `training`: the run's settings. Returns the path."""
    from safetensors.torch import save as to_bytes

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--save-model {path} is a folder; give a file name, e.g. {path / 'model.safetensors'}")
    rec = data.kind == "interactions"
    name = registry_name(model)
    why = None
    tasks = list(model.tasks)
    if rec:
        spec, encoding = data.spec, None
        kinds = {}
        ids = {"users": list(data.user_ids), "items": list(data.item_ids)}
    else:
        spec, ids = data.features, None
        kinds = {t: k.to_json() for t, k in zip(tasks, data.features.kinds_of(tasks))}
        encoding = data.encoding.for_tasks(tasks) if data.encoding is not None else None
        if encoding is not None and not encoding.fits(spec):
            encoding = None  # inputs changed after loading (a column made a task): new rows cannot be encoded alike
            why = "its inputs were changed after loading (a column made a task), so new rows cannot be encoded alike"
        elif encoding is None and data.version:
            why = (
                f"the table was prepared by an earlier mtlab, which kept no encoding: prepare {data.name} again "
                "(python -m mtlab.data prepare table …), train and save again"
            )
        elif encoding is None:
            why = (
                "its rows have no raw columns mtlab can encode (synthetic data; Ali-CCP's sparse feature lists); "
                "predictions need a model trained on Census-Income, AliExpress or a table of your own"
            )
    report = report or {}
    document = {
        "model": name,
        "options": json.loads(json.dumps(model.config(), default=list)),
        "tasks": tasks,
        "kinds": kinds,
        "spec": _spec_json(spec),
        "encoding": encoding.to_json() if encoding is not None else None,
        "why_no_encoding": why,
        "ids": ids,
        "dataset": {
            "name": data.name,
            "source": data.source,
            "version": data.version,  # a prepared table's or log's conversion (inputs' sha256 and settings)
            "fingerprint": data.version or _fetched_digest(data.source),
            "rows": {s: len(data.split(s)) for s in ("train", "valid", "test")},
        },
        "training": training or {},
        "metrics": {k: report.get(k) for k in ("valid", "test", "best_epoch", "epochs")},
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tensors = {f"weights.{k}": v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if rec:  # what a recommendation excludes: the pairs the model saw (training and validation)
        tensors["seen"] = torch.cat([data.train, data.valid]).to("cpu", torch.int64).contiguous()
    text = json.dumps(document, allow_nan=True)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "mtlab": text,
        "digest": _digest(text, tensors),  # a description edited after saving no longer matches its weights
    }
    blob = to_bytes(tensors, metadata)
    with one_writer(path):
        for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):  # a killed earlier save's
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def _digest(text: str, tensors: dict) -> str:
    """sha256 of a model file's JSON document and its tensors (names, shapes, dtypes and bytes)."""
    import hashlib

    digest = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _check_consistent(document: dict, spec, encoding: Encoding | None, weights: dict) -> None:
    """Refuse a document whose parts disagree: task kinds against the spec's, an encoding that does not
    make the spec's inputs, weights that are not finite."""
    if not isinstance(spec, InteractionSpec):
        kinds = {t: TaskKind.from_json(k) for t, k in document["kinds"].items()}
        if set(kinds) != set(document["tasks"]) or any(kinds[t] != spec.kinds_of([t])[0] for t in kinds):
            raise ValueError("the task kinds disagree with the model's inputs")
        if encoding is not None and not encoding.fits(spec):
            raise ValueError("the encoding does not make the model's inputs")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"the weights {bad[:3]} are not finite numbers")


def _fetched_digest(source: str) -> str:
    """A built-in dataset's fingerprint: a digest of the sha256 of the files `fetch` verified (the
    folder's stamp), "" where there is none (synthetic data)."""
    import hashlib

    from ..data.download import STAMP

    try:
        stamp = json.loads((Path(source) / STAMP).read_text())
    except (OSError, ValueError, TypeError):
        return ""
    files = {name: value[0] if isinstance(value, list) else value for name, value in sorted(stamp.items())}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def one_writer(path: Path):
    """An exclusive lock beside `path` (a hidden `.NAME.lock` file) while it is written: a second process
    writing the same file stops at once instead of racing the first (data.download.exclusive)."""
    return exclusive(path.parent / f".{path.name}.lock", f"another process is writing {path} now; wait for it to "
                     "finish, or write another file")  # fmt: skip


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_model(path: str | Path, device: str = "auto") -> SavedModel:
    """A model saved by `save_model` (`mtlab train --save-model`), rebuilt with its reported weights
    and in evaluation mode on `device` ("auto": CUDA when present). Raises ModelFileError for a file that is missing, damaged, not
    an mtlab model (a training checkpoint, say) or of another format version."""
    from safetensors import SafetensorError, safe_open

    from ..models import MODELS, build_model

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}; save one with `python -m mtlab train … --save-model {path}`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        hint = ""
        with open(path, "rb") as fh:
            if fh.read(2) == b"PK":  # a zip: torch.save's format, e.g. a --checkpoint
                hint = " (it looks like a training checkpoint: save the model with --save-model FILE)"
        raise ModelFileError(
            f"{path} is not a readable mtlab model file{hint}: {str(err).splitlines()[0][:200]}; "
            "save the model again with `python -m mtlab train … --save-model FILE`"
        ) from err
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is a safetensors file but not an mtlab model (no {FORMAT!r} format in its header)"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ModelFileError(
            f"{path} is an mtlab model of format version {version}, and this mtlab reads version {FORMAT_VERSION}: "
            f"load it with the mtlab that wrote it, or train and save it again"
        )
    try:
        if metadata.get("digest") != _digest(metadata["mtlab"], tensors):
            raise ModelFileError(
                f"{path} was changed after it was saved (its description or weights no longer match the digest "
                "written with them); save the model again from its training run"
            )
        document = json.loads(metadata["mtlab"])
        if document["model"] not in MODELS:
            raise ModelFileError(f"{path} holds a model {document['model']!r} this mtlab does not have")
        spec = _spec_from_json(document["spec"])
        model = build_model(document["model"], spec, document["tasks"], **document["options"])
        weights = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
        model.load_state_dict(weights)
        encoding = Encoding.from_json(document["encoding"]) if document.get("encoding") else None
        _check_consistent(document, spec, encoding, weights)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as err:
        raise ModelFileError(
            f"{path} is damaged or inconsistent ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "save the model again"
        ) from err
    model.to(resolve_device(device)).eval()
    return SavedModel(path, model, document, encoding, tensors.get("seen"))


@dataclass
class Prediction:
    """`SavedModel.predict`'s result: the predictions and what encoding the rows noticed."""

    frame: pd.DataFrame
    unknown: dict[str, int] = field(default_factory=dict)  # per column: rows that took the unknown code
    ignored: list[str] = field(default_factory=list)  # columns the model does not read
    unknown_users: int = 0  # a recommender's input users it never saw (no recommendation)
    missing: dict[str, int] = field(default_factory=dict)  # per numeric column: rows without a value (the mean)


@dataclass
class SavedModel:
    """A loaded model file: `model` (evaluation mode), `info` (the file's JSON document), `encoding`."""

    path: Path
    model: torch.nn.Module
    info: dict
    encoding: Encoding | None
    seen: torch.Tensor | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.info["tasks"])

    @property
    def kinds(self) -> tuple[TaskKind, ...]:
        kinds = self.info["kinds"]
        return tuple(TaskKind.from_json(kinds[t]) if t in kinds else TaskKind() for t in self.tasks)

    @property
    def recommender(self) -> bool:
        return self.info["spec"]["kind"] == "interactions"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def output_columns(self) -> list[str]:
        """The prediction columns, in order: a task's name (a multi-class task's predicted class), then
        a multi-class task's class probabilities `TASK=CLASS`."""
        out = []
        for task, kind in zip(self.tasks, self.kinds):
            out.append(task)
            if kind.kind == "multiclass":
                out += [f"{task}={c}" for c in kind.classes]
        return out

    def required_columns(self) -> list[str]:
        """The columns new rows must hold."""
        if self.recommender:
            return []
        return self._encoding().columns

    def _encoding(self) -> Encoding:
        if self.encoding is None:
            name = self.info["dataset"]["name"]
            why = self.info.get("why_no_encoding") or "it was saved without an encoding"
            raise DataError(f"this model (trained on {name!r}) cannot predict raw rows: {why}")
        return self.encoding

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> torch.Tensor:
        """Predictions [B, Σ width] (data.task_kinds.outputs, float64) of encoded rows."""
        logits = self.model(batch.to(self.device))
        return outputs(logits, self.kinds).cpu()

    def predict(self, frame: pd.DataFrame, id_columns=(), top_k: int = 10, user_column: str = "user") -> pd.DataFrame:
        """Predictions for the rows of `frame` (raw columns, as in the training file; extra columns are
        ignored), one row per input row, in order: `id_columns` copied, then per task its column — a
        binary task's probability, a regression task's value in its units, a multi-class task's
        predicted class and its class probabilities `TASK=CLASS`. A recommender gives the `top_k` items
        of each user in `user_column` (items the user had in training or validation left out): columns
        user, rank (1 …), item, score. What encoding noticed (unknown codes, missing numbers, ignored
        columns) is in `.attrs["notices"]`. Raises DataError for missing columns or bad cells.

        Read files with `mtlab.data.converters.table.read_frame` (as `prepare table` read the training
        file: only an empty cell is missing), or give the path to `predict_file`: pandas' `read_csv`
        turns cells such as "NA" into missing values, which then take the unknown code."""
        prediction = self.prediction(frame, id_columns, top_k, "the input", user_column)
        prediction.frame.attrs["notices"] = notices(prediction, len(frame))
        return prediction.frame

    def prediction(
        self, frame: pd.DataFrame, id_columns=(), top_k: int = 10, where: str = "the input", user_column: str = "user"
    ) -> Prediction:
        """`predict`'s frame with what encoding noticed, as counts (`Prediction`)."""
        id_columns = list(dict.fromkeys(id_columns))
        check_distinct_columns(frame.columns, where)
        missing_ids = [c for c in id_columns if c not in frame.columns]
        if missing_ids:
            raise DataError(f"--id-column {', '.join(map(repr, missing_ids))}: no such column in {where}")
        if self.recommender:
            if id_columns:
                raise DataError("--id-column: a recommender's output names each row's user already; leave it out")
            return self._recommend(frame, top_k, where, user_column)
        clash = [c for c in id_columns if c in self.output_columns()]
        if clash:
            raise DataError(
                f"--id-column {', '.join(map(repr, clash))}: the predictions have a column of that name (a task's); "
                "copy the column under another name in the input to keep it beside its prediction"
            )
        encoding = self._encoding()
        ignored = [c for c in encoding.check_columns(frame.columns, where) if c not in id_columns]
        encoded = encoding.encode(frame, where)
        parts = [
            self.predict_batch(
                Batch(encoded.batch.cat[i : i + PREDICT_BATCH], encoded.batch.num[i : i + PREDICT_BATCH])
            )
            for i in range(0, len(frame), PREDICT_BATCH)
        ]
        width = sum(k.width for k in self.kinds)
        values = torch.cat(parts).numpy() if parts else np.zeros((0, width), np.float64)
        out = self.table(values)
        if id_columns:
            out = pd.concat([frame[id_columns].reset_index(drop=True), out], axis=1)
        return Prediction(out, encoded.unknown, ignored, missing=encoded.missing)

    def table(self, values: np.ndarray) -> pd.DataFrame:
        """Predictions [N, Σ width] (`predict_batch`) as the output columns (`output_columns`): a
        multi-class task's predicted class, then its class probabilities."""
        out = {}
        for task, kind, cols in zip(self.tasks, self.kinds, columns(self.kinds)):
            if kind.kind == "multiclass":
                probs = values[:, cols]
                out[task] = np.asarray(kind.classes, dtype=object)[probs.argmax(1)] if len(probs) else []
                out |= {f"{task}={c}": probs[:, k].astype(np.float32) for k, c in enumerate(kind.classes)}
            elif kind.kind == "binary":
                out[task] = values[:, cols.start].astype(np.float32)
            else:  # a value in the target's units: float64 (a target of 2.5e6 has a float32 step of 0.25)
                out[task] = values[:, cols.start]
        return pd.DataFrame(out, index=range(len(values)))

    @torch.no_grad()
    def _recommend(self, frame: pd.DataFrame, top_k: int, where: str, user_column: str) -> Prediction:
        users_known = self.info["ids"]["users"]
        items = np.asarray(self.info["ids"]["items"], dtype=object)
        if not users_known:
            raise DataError("this recommender was saved without user ids (its data loader keeps none); train it again")
        if user_column not in frame.columns:
            raise DataError(
                f"{where} has no column {user_column!r} of user ids; name it with --user-column (its columns: "
                f"{', '.join(map(str, frame.columns))})"
            )
        n_items = len(items)
        if not 1 <= top_k <= n_items:
            raise DataError(f"--top-k must be between 1 and the number of items ({n_items}), got {top_k}")
        index = pd.Index(users_known)
        raw = as_text(frame[user_column])  # ids as the loaders spell them: 196.0 from a float column is 196
        codes = index.get_indexer(raw)
        known = codes >= 0
        # each distinct user scored once, in the ranking evaluator's order and chunks (sorted codes, 1,024
        # at a time: the same scores, so the same ranks), then given to every row that names the user
        users, row_of = torch.unique(torch.as_tensor(codes[known], dtype=torch.int64), return_inverse=True)
        seen = self.seen.to(self.device) if self.seen is not None else torch.zeros(0, 2, dtype=torch.int64)
        position = torch.full((len(users_known),), -1, dtype=torch.long, device=self.device)
        tops, scores = [], []
        for start in range(0, len(users), RANKING_CHUNK):
            block = users[start : start + RANKING_CHUNK].to(self.device)
            s = self.model.scores(block).float()
            position[block] = torch.arange(len(block), device=self.device)
            mine = seen[position[seen[:, 0]] >= 0]
            s[position[mine[:, 0]], mine[:, 1]] = float("-inf")  # seen items are never recommended
            position[block] = -1
            best = torch.topk(s, top_k, dim=1)
            tops.append(best.indices.cpu())
            scores.append(best.values.cpu())
        tops = [torch.cat(tops)[row_of]] if tops else []
        scores = [torch.cat(scores)[row_of]] if scores else []
        top = torch.cat(tops).numpy() if tops else np.zeros((0, top_k), np.int64)
        score = torch.cat(scores).numpy() if scores else np.zeros((0, top_k), np.float32)
        out = pd.DataFrame(
            {
                user_column: np.repeat(raw.to_numpy()[known], top_k),
                "rank": np.tile(np.arange(1, top_k + 1), len(top)),
                "item": items[top.reshape(-1)] if len(top) else np.zeros(0, dtype=object),
                "score": score.reshape(-1),
            }
        )
        out = out[np.isfinite(out["score"].to_numpy())]  # a user who saw nearly every item gets fewer
        return Prediction(out.reset_index(drop=True), unknown_users=int((~known).sum()))


def notices(prediction: Prediction, rows: int) -> list[str]:
    """One line per thing a user should know about a prediction: unknown codes, ignored columns."""
    lines = []
    if prediction.unknown:
        total = ", ".join(f"{c}: {n:,}" for c, n in sorted(prediction.unknown.items(), key=lambda cn: -cn[1]))
        lines.append(
            f"notice: values training never held (or held too rarely) took the unknown code, rows per column: {total}"
        )
    if prediction.missing:
        total = ", ".join(f"{c}: {n:,}" for c, n in sorted(prediction.missing.items(), key=lambda cn: -cn[1]))
        lines.append(f"notice: numeric values missing, filled with the training mean, rows per column: {total}")
    if prediction.ignored:
        lines.append(f"notice: column(s) the model does not read were ignored: {', '.join(prediction.ignored)}")
    if prediction.unknown_users:
        lines.append(
            f"notice: {prediction.unknown_users:,} of {rows:,} users were not in the training data and get no "
            "recommendation (a matrix factorization has no embedding for them)"
        )
    return lines


def _chunks(path: Path, wanted: list[str] | None, rows: int):
    """(DataFrame, rows in it) of a CSV or Parquet file, `rows` rows (Parquet) or a block (CSV) at a
    time, only the `wanted` columns (None: all) — memory bounded by a chunk whatever the file's size.
    A CSV's cells are read as text (`Encoding.encode` reads them as training read its columns), an
    empty cell as missing; each chunk's index is its rows' positions in the file (line numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ..data.converters.table import delimiter_of

    start = 0
    try:
        if path.suffix.lower() == ".parquet":
            reader = pq.ParquetFile(path)
            names = reader.schema_arrow.names
            pick = [c for c in names if wanted is None or c in wanted]
            batches = reader.iter_batches(batch_size=rows, columns=pick)
        else:
            delimiter = delimiter_of(path)
            header = pacsv.open_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                read_options=pacsv.ReadOptions(block_size=1 << 20),
            ).schema.names
            pick = [c for c in header if wanted is None or c in wanted]
            batches = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=16 << 20),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    include_columns=pick,
                    column_types={c: pa.string() for c in pick},
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
            names = header
        yield names, None
        for batch in batches:
            frame = batch.to_pandas()
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame, len(frame)
    except (pa.ArrowInvalid, OSError) as err:
        kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
        said = str(err).strip().splitlines()[0][:300]
        hint = "every row needs as many fields as the header" if "columns" in said else "is it the file you meant?"
        raise DataError(f"{path} is not a readable {kind} file: {said}; repair it ({hint})") from err


def predict_file(
    saved: SavedModel,
    source: str | Path,
    out: str | Path,
    id_columns=(),
    top_k: int = 10,
    user_column: str = "user",
    quiet: bool = False,
    chunk_rows: int = PREDICT_BATCH,
) -> dict:
    """`saved.predict` over a CSV or Parquet file, chunk by chunk (bounded memory, a progress bar unless
    `quiet`), into `out` (.csv or .parquet), written whole or not at all (a temporary file beside it,
    renamed at the end). Returns {"rows", "predictions", "notices"}. A missing column is refused before
    anything is written."""

    source, out = Path(source), Path(out)
    if not source.is_file():
        raise DataError(f"--input {source}: no such file; give a CSV or Parquet file of new rows")
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--out {out}: name a .csv or .parquet file")
    if out.resolve() == source.resolve():
        raise DataError(f"--out {out} is the input file; write the predictions to another file")
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; give a file name, e.g. {out / 'predictions.csv'}")
    id_columns = list(id_columns)
    needed = saved.required_columns()
    wanted = None if not needed else [*needed, *id_columns]
    chunks = _chunks(source, wanted, chunk_rows)
    names, _ = next(chunks)
    where = str(source)
    check_distinct_columns(names, where)
    id_columns = list(dict.fromkeys(id_columns))
    if saved.recommender:
        if user_column not in names:
            raise DataError(
                f"{where} has no column {user_column!r} of user ids; name it with --user-column (its columns: "
                f"{', '.join(names)})"
            )
        if id_columns:
            raise DataError("--id-column: a recommender's output names each row's user already; leave it out")
    else:
        saved._encoding().check_columns(names, where)  # missing columns: refused here, before any work
    missing_ids = [c for c in id_columns if c not in names]
    if missing_ids:
        raise DataError(f"--id-column {', '.join(map(repr, missing_ids))}: no such column in {where}")
    with one_writer(out):
        return _write_predictions(saved, chunks, names, where, out, id_columns, top_k, user_column, quiet, source)


def _write_predictions(saved, chunks, names, where, out, id_columns, top_k, user_column, quiet, source) -> dict:
    """`predict_file`'s loop, under its lock: each chunk predicted and appended to a temporary file,
    renamed over `out` when every row is done."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    ignored = (
        [] if saved.recommender else [c for c in saved._encoding().check_columns(names, where) if c not in id_columns]
    )
    for stale in out.parent.glob(f"{glob.escape(out.name)}.*.tmp"):  # a killed earlier run's (we hold the lock)
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".tmp")
    os.close(fd)
    rows = predictions = unknown_users = 0
    unknown: dict[str, int] = {}
    missing: dict[str, int] = {}
    writer = None
    bar = tqdm(disable=quiet, unit=" rows", desc=f"predict {source.name}")
    try:
        for frame, n in chunks:
            prediction = saved.prediction(frame, id_columns, top_k, where, user_column)
            for c, k in prediction.unknown.items():
                unknown[c] = unknown.get(c, 0) + k
            for c, k in prediction.missing.items():
                missing[c] = missing.get(c, 0) + k
            unknown_users += prediction.unknown_users
            if out.suffix.lower() == ".csv":
                prediction.frame.to_csv(tmp, mode="w" if writer is None else "a", header=writer is None, index=False)
                writer = True
            else:
                table = pa.Table.from_pandas(prediction.frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
            rows, predictions = rows + n, predictions + len(prediction.frame)
            bar.update(n)
        if writer is None:  # no rows: the header alone
            empty = saved.prediction(
                pd.DataFrame({c: pd.Series(dtype=object) for c in names}), id_columns, top_k, where, user_column
            )
            if out.suffix.lower() == ".csv":
                empty.frame.to_csv(tmp, index=False)
            else:
                pq.write_table(pa.Table.from_pandas(empty.frame, preserve_index=False), tmp)
        elif writer is not True:
            writer.close()
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        if writer not in (None, True):
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    summary = Prediction(pd.DataFrame(), unknown, [] if saved.recommender else ignored, unknown_users, missing)
    return {"rows": rows, "predictions": predictions, "notices": notices(summary, rows)}


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "Prediction",
    "SavedModel",
    "load_model",
    "predict_file",
    "save_model",
]
