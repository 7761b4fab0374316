"""Paths in a work directory that lives on a local disk or in object storage.

A work directory is a local path, `file://...`, `s3://bucket/prefix`, `gs://bucket/prefix`, or any URI that
`pyarrow.fs.FileSystem.from_uri` opens. `WorkPath` is the one type every stage, `explain`, `stats` and
`publish` use for what they read and write there: a small immutable value (a string, so it pickles into
Ray tasks) with the operations the pipeline needs, on the local file system through the OS and in a
bucket through pyarrow's filesystems (C++ clients that stream, range-read parquet footers and columns, and
upload in parts). Nothing here assumes `rename`:

- Locally a file is written under `.tmp-*` beside its final name and renamed into place.
- In object storage an object is written directly to its final key. A PUT, or the completion of a
  multipart upload, makes it visible whole or not at all, so a killed writer leaves no object. The pipeline
  then writes each part's record after the part and a stage's manifest last, as on disk: what a resumed run
  trusts is always complete.

Endpoint and credentials come from the standard AWS environment and configuration (`AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL`, `AWS_PROFILE`, the shared files, instance roles) or from `--endpoint-url` / `--profile`,
kept in `StoreOptions`. Those two are names, not secrets: the engine hands them to every task (see
`curate.engine`), and each worker resolves credentials from its own node's chain. A URI carrying
credentials is refused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from curate.errors import CurateError

CHUNK = 1 << 20


class WorkdirError(CurateError):
    """A work directory that cannot be used (no such bucket, unreachable endpoint, no write permission)."""

    exit_code = 2


@dataclass(frozen=True)
class StoreOptions:
    """How to reach object storage, beyond the standard environment: names only, never a secret."""

    endpoint_url: str | None = None
    profile: str | None = None


_OPTIONS = StoreOptions()
_FILESYSTEMS: dict[tuple, pafs.FileSystem] = {}


def configure(options: StoreOptions | None) -> None:
    """This process's store options (the CLI's flags in the driver; the driver's, sent along, in a worker)."""
    global _OPTIONS
    options = options or StoreOptions()
    if options != _OPTIONS:
        _OPTIONS = options
        _FILESYSTEMS.clear()


def options() -> StoreOptions:
    return _OPTIONS


def endpoint_of(endpoint_url: str | None) -> str | None:
    """The S3 endpoint: the flag, else the AWS environment's (service-specific variable first)."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_filesystem(endpoint_url: str | None = None, profile: str | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 client for an endpoint (MinIO, R2, a local server) and a named profile. Without a
    profile, credentials come from the AWS SDK's default chain (environment, shared files, instance roles);
    with one, boto3 resolves that profile's credentials in this process (they are never passed on)."""
    # allow_delayed_open: an object smaller than one part is sent as a single PUT when it is closed, not as a
    # multipart upload (3 requests); most of a work directory's objects are small records and manifests
    kwargs: dict = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=4), "connect_timeout": 10,
                    "allow_delayed_open": True}
    if endpoint := endpoint_of(endpoint_url):
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if profile:
        import boto3
        import botocore.exceptions

        try:
            session = boto3.session.Session(profile_name=profile)
        except botocore.exceptions.ProfileNotFound as exc:
            raise WorkdirError(f"--profile {profile}: {exc}") from None
        creds = session.get_credentials()
        if creds is None:
            raise WorkdirError(f"--profile {profile}: the profile gives no credentials")
        frozen = creds.get_frozen_credentials()
        kwargs.update(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
        region = session.region_name or region
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def filesystem(scheme: str, uri: str) -> pafs.FileSystem:
    """The (cached, per process) filesystem of a remote scheme, with this process's store options."""
    key = (scheme, _OPTIONS) if scheme in ("s3", "gs", "gcs") else (scheme, uri.split("/", 3)[2])
    if key not in _FILESYSTEMS:
        if scheme == "s3":
            _FILESYSTEMS[key] = s3_filesystem(_OPTIONS.endpoint_url, _OPTIONS.profile)
        elif scheme in ("gs", "gcs"):
            _FILESYSTEMS[key] = pafs.GcsFileSystem()
        else:
            _FILESYSTEMS[key] = pafs.FileSystem.from_uri(uri)[0]
    return _FILESYSTEMS[key]


class WorkPath:
    """A file or folder in a work directory: a local path or `scheme://bucket/key`. Immutable, hashable,
    and a plain string inside, so it pickles into tasks as cheaply as a path."""

    __slots__ = ("uri",)

    def __init__(self, where: str | os.PathLike | WorkPath):
        uri = where.uri if isinstance(where, WorkPath) else os.fspath(where)
        if uri.startswith("file://"):
            uri = uri[len("file://"):] or "/"
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme:
            from curate.stores import refuse_credentials

            refuse_credentials(uri)
            head, _, rest = uri.partition("://")
            uri = f"{head}://{rest.rstrip('/')}"
        elif len(uri) > 1:
            uri = uri.rstrip("/") or "/"
        self.uri = uri

    # -------------------------------------------------------------------------------- names
    @property
    def remote(self) -> bool:
        return "://" in self.uri

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0] if self.remote else ""

    def __truediv__(self, name: str) -> WorkPath:
        return WorkPath(f"{self.uri}/{name}" if self.remote else os.path.join(self.uri, name))

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1] if self.remote else Path(self.uri).name

    @property
    def stem(self) -> str:
        name = self.name
        return name[: name.rindex(".")] if "." in name[1:] else name

    @property
    def parent(self) -> WorkPath:
        if self.remote:
            head, _, rest = self.uri.partition("://")
            return WorkPath(f"{head}://{rest.rsplit('/', 1)[0]}" if "/" in rest else self.uri)
        return WorkPath(str(Path(self.uri).parent))

    @property
    def local(self) -> Path:
        """The local path; an error for an object in a bucket (callers that need a real file use `local_copy`)."""
        if self.remote:
            raise TypeError(f"{self.uri} is not on a local file system")
        return Path(self.uri)

    @property
    def identity(self) -> str:
        """What two names of the same place share: the real path on disk, the URI in a bucket."""
        return self.uri if self.remote else os.path.realpath(self.uri)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"WorkPath({self.uri!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, WorkPath) and self.uri == other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: WorkPath) -> bool:
        return self.uri < other.uri

    def __reduce__(self):
        return WorkPath, (self.uri,)

    # -------------------------------------------------------------------------------- remote plumbing
    def _fs(self) -> tuple[pafs.FileSystem, str]:
        return filesystem(self.scheme, self.uri), self.uri.split("://", 1)[1]

    def arrow_location(self) -> tuple[pafs.FileSystem, str]:
        """(pyarrow filesystem, path in it), for pyarrow APIs that take both (datasets)."""
        if self.remote:
            return self._fs()
        return pafs.LocalFileSystem(), os.path.abspath(self.uri)

    def _info(self) -> pafs.FileInfo:
        fs, path = self._fs()
        return fs.get_file_info(path)

    # -------------------------------------------------------------------------------- queries
    def is_file(self) -> bool:
        if not self.remote:
            return os.path.isfile(self.uri)
        return self._info().type == pafs.FileType.File

    def size(self) -> int:
        if not self.remote:
            return os.path.getsize(self.uri)
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(self.uri)
        return int(info.size)

    def _listing(self, pattern: str) -> dict[str, int]:
        """name -> size of the files directly in this folder whose name matches `pattern` (one listing; a
        missing folder lists nothing). Temporaries (`.tmp-*`) never match."""
        if not self.remote:
            if not os.path.isdir(self.uri):
                return {}
            found = {e.name: e.stat().st_size for e in os.scandir(self.uri) if e.is_file()}
        else:
            fs, path = self._fs()
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            found = {i.base_name: int(i.size) for i in infos if i.type == pafs.FileType.File}
        return {n: size for n, size in sorted(found.items())
                if fnmatch.fnmatchcase(n, pattern) and not n.startswith(".tmp-")}

    def files(self, pattern: str = "*") -> list[WorkPath]:
        """Files directly in this folder whose name matches `pattern`, sorted by name; [] if it is absent."""
        return [self / n for n in self._listing(pattern)]

    def sizes(self, pattern: str = "*") -> dict[str, int]:
        """name -> size of the matching files directly in this folder, sorted by name."""
        return self._listing(pattern)

    def files_under(self) -> list[tuple[str, WorkPath]]:
        """Every file below this folder, at any depth, as (relative '/'-separated name, path), sorted by name."""
        if not self.remote:
            root = Path(self.uri)
            found = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        else:
            fs, path = self._fs()
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
            found = [i.path[len(path) + 1:] for i in infos if i.type == pafs.FileType.File]
        return [(rel, self / rel) for rel in sorted(found) if not rel.rsplit("/", 1)[-1].startswith(".tmp-")]

    # -------------------------------------------------------------------------------- reading
    def open_input(self) -> pa.NativeFile:
        """A random-access reader (parquet footers and column chunks are range reads in a bucket)."""
        if not self.remote:
            return pa.OSFile(self.uri, "rb")
        fs, path = self._fs()
        return fs.open_input_file(path)

    def open_stream(self) -> pa.NativeFile:
        """A sequential reader (read-ahead in a bucket) of the stored bytes: a `.gz` name is not decompressed,
        in a bucket as on disk (pyarrow's streams would otherwise detect compression from the extension)."""
        if not self.remote:
            return pa.OSFile(self.uri, "rb")
        fs, path = self._fs()
        return fs.open_input_stream(path, compression=None)

    def read_bytes(self) -> bytes:
        if not self.remote:
            return Path(self.uri).read_bytes()
        with self.open_stream() as fh:
            return fh.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def read_json(self):
        return json.loads(self.read_bytes())

    @contextmanager
    def local_copy(self) -> Iterator[Path]:
        """A local file with this file's bytes (itself on disk; a temporary download from a bucket), for
        readers that need a real file (numpy's memory maps)."""
        if not self.remote:
            yield Path(self.uri)
            return
        with tempfile.TemporaryDirectory(prefix="curate-") as tmp:
            dest = Path(tmp) / self.name
            with self.open_stream() as src, open(dest, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            yield dest

    # -------------------------------------------------------------------------------- writing
    @contextmanager
    def writer(self, digest: Digest | None = None) -> Iterator[pa.NativeFile]:
        """A sink for this file's bytes, published only if the block succeeds: renamed into place on disk,
        completed as one object in a bucket. With `digest`, the bytes are counted and hashed on their
        way out (no second read of the file, which in a bucket would be a second transfer)."""
        if digest is not None:
            with self.writer() as raw, pa.PythonFile(_Hashing(raw, digest), mode="w") as sink:
                yield sink
            return
        if not self.remote:
            final = Path(self.uri)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
            try:
                with pa.OSFile(str(tmp), "wb") as sink:
                    yield sink
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            return
        fs, path = self._fs()
        sink = fs.open_output_stream(path)
        try:
            yield sink
        except BaseException:
            _abandon(sink, fs, path)
            raise
        sink.close()

    def write_bytes(self, data: bytes) -> None:
        with self.writer() as sink:
            sink.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def write_json(self, obj) -> None:
        self.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def sha256(self) -> str:
        h = hashlib.sha256()
        with self.open_stream() as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()

    # -------------------------------------------------------------------------------- removing
    def unlink(self) -> None:
        """Removes the file if it exists."""
        if not self.remote:
            Path(self.uri).unlink(missing_ok=True)
            return
        fs, path = self._fs()
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass

    def rmtree(self) -> None:
        """Removes the folder and everything in it, if it exists. (In a bucket a folder is only a key prefix;
        pyarrow may leave an empty marker for its parent, which nothing here reads.)"""
        if not self.remote:
            shutil.rmtree(self.uri, ignore_errors=True)
            return
        fs, path = self._fs()
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)

    def clean_temporaries(self) -> None:
        """Removes `.tmp-*` leftovers of a killed attempt under this folder (a bucket has none: an
        unfinished upload is never an object)."""
        if not self.remote and os.path.isdir(self.uri):
            for tmp in Path(self.uri).rglob(".tmp-*"):
                tmp.unlink(missing_ok=True)


class Digest:
    """Size and sha256 of the bytes a `WorkPath.writer(digest)` wrote; valid once the block is left."""

    def __init__(self):
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class _Hashing:
    """A write-only file object that hashes what passes through it to `sink` (wrapped by pa.PythonFile)."""

    def __init__(self, sink: pa.NativeFile, digest: Digest):
        self.sink, self.digest, self.closed = sink, digest, False

    def write(self, data) -> int:
        data = memoryview(data)
        self.digest._hash.update(data)
        self.digest.size += data.nbytes
        self.sink.write(data)
        return data.nbytes

    def tell(self) -> int:
        return self.digest.size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _abandon(sink, fs: pafs.FileSystem, path: str) -> None:
    """Gives up an upload after an error. pyarrow's output streams cannot abort (closing completes the
    upload, and so does dropping the stream), so the object is closed and deleted again. It was never
    trusted anyway: a part counts only once its record, written after it, exists."""
    try:
        sink.close()
        fs.delete_file(path)
    except Exception:  # the original error is the one to report
        pass


def check_workdir(workdir: WorkPath) -> None:
    """Before any work starts: the work directory can be written. In a bucket: listed, and a probe object
    written and removed again; a bucket that does not exist, an unreachable endpoint or a refused write is
    one clear error. On disk: its nearest existing folder is a writable folder (nothing is created)."""
    if not workdir.remote:
        _check_local(Path(workdir.uri).absolute())
        return
    probe = workdir / f"_probe-{uuid.uuid4().hex[:12]}"
    try:
        workdir.files("_manifest.json")
        probe.write_bytes(b"")
        probe.unlink()
    except WorkdirError:
        raise
    except OSError as exc:
        raise WorkdirError(f"work directory {workdir}: {_reason(exc)}") from None


def _check_local(path: Path) -> None:
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise WorkdirError(f"work directory {path}: {existing} is a file, not a folder")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise WorkdirError(f"work directory {path}: {existing} is on a Read-only file system")
    if not os.access(existing, os.W_OK):
        raise WorkdirError(f"work directory {path}: no permission to write in {existing}")


def _reason(exc: OSError) -> str:
    text = str(exc)
    for needle, why in (("NO_SUCH_BUCKET", "the bucket does not exist"),
                        ("ACCESS_DENIED", "access denied (no permission to list or write)"),
                        ("AccessDenied", "access denied (no permission to list or write)"),
                        ("NETWORK_CONNECTION", "cannot reach the endpoint"),
                        ("Could not resolve", "cannot reach the endpoint")):
        if needle in text:
            return f"{why}: {text.splitlines()[0]}"
    return text.splitlines()[0] if text else type(exc).__name__
