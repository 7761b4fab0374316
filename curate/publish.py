"""Publish a work directory's shards and report to object storage, resumably; verify a published dataset.

Remote layout (keys relative to DEST, mirroring WORKDIR):

    DEST/shards/shard-NNNNN.arrow   the pack stage's shards, byte for byte
    DEST/shards/manifest.json       the pack stage's manifest, sent after every shard
    DEST/report/...                 WORKDIR/report/ when present, every file
    DEST/_manifest.json             the commit marker, written last (MANIFEST_FORMAT)

The commit marker lists every object with its size and sha256, and is written only after every listed
object has been read back and found to match. A reader that sees it can trust what it lists; a
publish that fails or is killed leaves no marker. On S3 each object also carries its sha256 as user
metadata, so a rerun skips objects whose size and recorded sha256 match the expected ones (without
reading them) and re-sends the rest. Nothing remote is ever deleted except the marker itself, when
`--overwrite` replaces a different published dataset.

Each source object is read once. A shard's expected size and sha256 are the pack manifest's (the size is
checked against the work directory's listing up front); its bytes are hashed as they stream to the
destination, and bytes that differ from the manifest abandon the upload before it completes (no object
appears) and refuse the publish, before the marker could be written. Report files and the pack manifest
are small and hashed up front. What a skipped object is trusted on: see `_needs_upload`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from curate import __version__
from curate.errors import CurateError
from curate.stores import BytesDiffer, Store, open_store, safe_uri, sha256_stream
from curate.workpath import WorkPath

log = logging.getLogger("curate.publish")

MANIFEST_KEY = "_manifest.json"
MANIFEST_FORMAT = "curate-publish/1"
PACK_MANIFEST_KEY = "shards/manifest.json"
SHARD_GLOB = "shard-*.arrow"
# Test-only fault injection: "N" raises after the Nth completed upload, "N:kill" SIGKILLs the process there.
FAIL_AFTER_ENV = "CURATE_PUBLISH_FAIL_AFTER"


class PublishError(CurateError):
    """Publishing or verifying failed; the message names the object."""


class PublishRefused(CurateError):
    """The work directory is incomplete, or the destination holds a different published dataset (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class LocalObject:
    key: str
    path: WorkPath  # in the work directory: on disk or in a bucket
    size: int
    sha256: str
    # False for a shard: size and sha256 are the pack manifest's, and its bytes are proven against them as they
    # stream to the destination (or by `prove_sources`); True when they were hashed from the source itself.
    hashed: bool = True
    manifest: WorkPath | None = None  # the pack manifest that gave them, for messages

    def entry(self) -> dict:
        return {"key": self.key, "bytes": self.size, "sha256": self.sha256}


@dataclass
class PublishResult:
    dest: str
    objects: list[LocalObject]
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    seconds_upload: float = 0.0
    seconds_verify: float = 0.0
    committed: bool = False
    marker_written: bool = False  # False when an identical commit was already there
    dry_run: bool = False

    def summary(self) -> str:
        total = sum(o.size for o in self.objects)
        if self.dry_run:
            return (f"dry run: {len(self.uploaded)} objects ({_mb(self.bytes_uploaded)}) would be uploaded, "
                    f"{len(self.skipped)} already there; {len(self.objects)} objects, {_mb(total)} in all")
        rate = self.bytes_uploaded / self.seconds_upload / 1e6 if self.seconds_upload else 0.0
        return (f"published {safe_uri(self.dest)}: {len(self.objects)} objects, {_mb(total)}; uploaded "
                f"{len(self.uploaded)} ({_mb(self.bytes_uploaded)} in {self.seconds_upload:.1f}s, {rate:.1f} MB/s), "
                f"skipped {len(self.skipped)} already present; verified {len(self.verified)} "
                f"in {self.seconds_verify:.1f}s; {MANIFEST_KEY} "
                + ("written" if self.marker_written else "already there, unchanged"))


@dataclass(frozen=True)
class Mismatch:
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ---- the local side: what is in the work directory, checked against the pack manifest

def _pack_entries(obj) -> dict[str, dict]:
    """Shard name -> {sha256, bytes} from the pack manifest, wherever in the JSON the per-shard records sit
    (a list of records naming their file, or a mapping keyed by file name)."""
    found: dict[str, dict] = {}

    def walk(node, name_hint=None):
        if isinstance(node, dict):
            if "sha256" in node:
                name = next((node[k] for k in ("file", "name", "path", "filename", "shard") if isinstance(node.get(k), str)), name_hint)
                if name is not None and fnmatch.fnmatch(Path(name).name, SHARD_GLOB):
                    found[Path(name).name] = node  # other hashed things (tokenizer, recipe) are not shards
                return
            for key, value in node.items():
                walk(value, key if key.endswith(".arrow") else None)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def _hash_files(paths: list[WorkPath], jobs: int) -> list[tuple[int, str]]:
    def one(path: WorkPath):
        with path.open_stream() as fh:
            return sha256_stream(fh)

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, paths))


def _differ(obj: LocalObject, size: int, sha256: str) -> PublishRefused:
    return PublishRefused(f"{obj.path}: bytes differ from {obj.manifest} (size {size}, sha256 {sha256[:12]}…)")


def local_objects(workdir: str | Path | WorkPath, jobs: int = 4) -> list[LocalObject]:
    """Every object to publish, in upload order: shards, report files, then the pack manifest.

    Refuses a work directory whose shards disagree with the pack manifest by name or by size (missing, extra,
    or a listed size that is not the manifest's): publishing it would commit a dataset the manifest does not
    describe. Shards are not read here: their sha256 is the manifest's, and their bytes are checked against
    it as they are uploaded (`Store.upload`) or by `prove_sources`. Report files and the pack manifest are
    hashed here."""
    workdir = WorkPath(workdir)
    shards_dir, report_dir = workdir / "shards", workdir / "report"
    pack_manifest = shards_dir / "manifest.json"
    if not pack_manifest.is_file():
        raise PublishRefused(f"{pack_manifest}: not found; run the pack stage first")
    entries = _pack_entries(pack_manifest.read_json())
    listed = shards_dir.sizes(SHARD_GLOB)
    if not entries:
        raise PublishRefused(f"{pack_manifest}: lists no shards with a sha256")
    for name in sorted(set(listed) ^ set(entries)):
        where = "is not listed in" if name in listed else "is listed in but missing from"
        raise PublishRefused(f"{shards_dir / name}: {where} {pack_manifest}")
    objects = []
    for name in sorted(entries):
        want, size = entries[name], listed[name]
        obj = LocalObject(f"shards/{name}", shards_dir / name, size, want["sha256"], hashed=False,
                          manifest=pack_manifest)
        if want.get("bytes", want.get("size", size)) != size:
            raise PublishRefused(f"{obj.path}: bytes differ from {pack_manifest} (size {size}, "
                                 f"expected {want.get('bytes', want.get('size'))})")
        objects.append(obj)
    reports = report_dir.files_under()
    keys = [f"report/{rel}" for rel, _ in reports] + [PACK_MANIFEST_KEY]
    paths = [p for _, p in reports] + [pack_manifest]
    objects += [LocalObject(k, p, size, digest) for k, p, (size, digest) in zip(keys, paths, _hash_files(paths, jobs))]
    return objects


def prove_sources(objects: list[LocalObject], jobs: int) -> None:
    """Hashes the sources of the objects whose sha256 was taken from the pack manifest, and refuses the publish
    if any differs. Only for the cases where checking while uploading comes too late (see `publish`)."""
    unproven = [o for o in objects if not o.hashed]
    for obj, (size, digest) in zip(unproven, _hash_files([o.path for o in unproven], jobs)):
        if (size, digest) != (obj.size, obj.sha256):
            raise _differ(obj, size, digest)


def publish_manifest(objects: list[LocalObject]) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "curate_version": __version__,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_objects": len(objects),
        "bytes": sum(o.size for o in objects),
        "objects": sorted((o.entry() for o in objects), key=lambda e: e["key"]),
    }


def _same_dataset(remote: dict, objects: list[LocalObject]) -> bool:
    return remote.get("objects") == sorted((o.entry() for o in objects), key=lambda e: e["key"])


def read_remote_manifest(store: Store) -> dict | None:
    data = store.read_bytes(MANIFEST_KEY)
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as exc:
        raise PublishError(f"{safe_uri(store.uri)}/{MANIFEST_KEY}: not valid JSON ({exc})") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise PublishError(f"{safe_uri(store.uri)}/{MANIFEST_KEY}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    return manifest


# ---- concurrency and progress

def _run_all(fn: Callable, items: Iterable, jobs: int) -> list:
    """fn over items in `jobs` threads, results in order; the first failure cancels what has not started."""
    failed = threading.Event()

    def guarded(item):
        if failed.is_set():  # a worker picks its next item before the main thread can cancel it
            return None
        try:
            return fn(item)
        except CurateError:
            failed.set()
            raise
        except Exception as exc:  # a transport error: name the object, keep the cause for -v tracebacks
            failed.set()
            raise PublishError(f"{getattr(item, 'key', item)}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        if failed.is_set():
            for fut in futures:
                fut.cancel()
            raise next(f.exception() for f in futures if f.done() and not f.cancelled() and f.exception())
        return [f.result() for f in futures]


class _Progress:
    """A tqdm bar in bytes with an object counter, safe to update from worker threads."""

    def __init__(self, desc: str, total_bytes: int, total_objects: int):
        self.lock = threading.Lock()
        self.done, self.total = 0, total_objects
        self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None, leave=False)

    def bytes(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def object_done(self) -> int:
        with self.lock:
            self.done += 1
            self.bar.set_postfix_str(f"{self.done}/{self.total} objects", refresh=False)
            return self.done

    def close(self) -> None:
        self.bar.close()


def _fault_hook() -> Callable[[int], None]:
    spec = os.environ.get(FAIL_AFTER_ENV, "")
    if not spec:
        return lambda n: None
    count, _, action = spec.partition(":")

    def hook(n: int) -> None:
        if n == int(count):
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise PublishError(f"{FAIL_AFTER_ENV}={spec}: failing on purpose after {n} uploads")

    return hook


# ---- publish and verify

def _check(store: Store, obj: LocalObject, progress: _Progress | None = None) -> Mismatch | None:
    """Reads one object back and compares size and sha256 with the expected ones."""
    found = store.hash_object(obj.key, progress.bytes if progress else None)
    if progress:
        progress.object_done()
    if found is None:
        return Mismatch(obj.key, "missing")
    size, digest = found
    if size != obj.size:
        return Mismatch(obj.key, f"size {size}, expected {obj.size}")
    if digest != obj.sha256:
        return Mismatch(obj.key, f"sha256 {digest}, expected {obj.sha256}")
    return None


def check_objects(store: Store, objects: list[LocalObject], jobs: int) -> list[Mismatch]:
    progress = _Progress("verify", sum(o.size for o in objects), len(objects))
    try:
        return [m for m in _run_all(lambda o: _check(store, o, progress), objects, jobs) if m is not None]
    finally:
        progress.close()


def _needs_upload(store: Store, obj: LocalObject, read_back: bool) -> bool:
    """False when the destination already holds the expected bytes: same size, and a recorded (S3 metadata) or,
    on stores without metadata or with `read_back`, a read-back sha256 equal to the expected one.

    A skipped shard's source is not read. The expected sha256 is the pack manifest's, the source's listed size
    was checked against the manifest's, and the remote bytes are read back before any marker vouches for them
    (or were, by the commit that lists them). So what gets published is exactly what the manifest describes,
    whatever the source holds. A source shard corrupted after pack while the destination holds the right
    bytes is therefore not noticed here; hashing every skipped source to notice it would cost a full read of
    the work directory on every rerun (a download per shard from a bucket), and would protect no reader of
    DEST. Readers of a work directory check shards against the manifest themselves (export; the loader unless
    `verify=False`)."""
    remote = store.stat(obj.key, read_back=read_back)
    return remote is None or remote.size != obj.size or remote.sha256 != obj.sha256


def _upload_all(store: Store, objects: list[LocalObject], jobs: int, result: PublishResult) -> None:
    """Data objects concurrently (largest first, so a big shard does not start last), then the pack manifest."""
    progress = _Progress("upload", sum(o.size for o in objects), len(objects))
    hook, started = _fault_hook(), time.perf_counter()

    def send(obj: LocalObject) -> None:
        try:
            store.upload(obj.key, obj.path, obj.size, obj.sha256, progress.bytes)
        except BytesDiffer as exc:  # abandoned before it completed: no object, and no marker after it
            if not obj.hashed:
                raise _differ(obj, exc.size, exc.sha256) from None
            raise PublishError(f"{obj.path}: changed while being published (size {exc.size}, expected {obj.size}; "
                               f"sha256 {exc.sha256[:12]}…, expected {obj.sha256[:12]}…)") from None
        hook(progress.object_done())

    try:
        data = sorted((o for o in objects if o.key != PACK_MANIFEST_KEY), key=lambda o: -o.size)
        _run_all(send, data, jobs)
        _run_all(send, [o for o in objects if o.key == PACK_MANIFEST_KEY], 1)
    finally:
        progress.close()
        result.seconds_upload = time.perf_counter() - started


def publish(workdir: str | Path, dest: str, *, endpoint_url: str | None = None, profile: str | None = None,
            jobs: int = 8, overwrite: bool = False, dry_run: bool = False, recheck: bool = False) -> PublishResult:
    """Uploads what is missing or differs (each source read once, checked against the pack manifest as it
    streams), reads back what is not yet committed, then writes the marker."""
    objects = local_objects(workdir, jobs)
    store = open_store(dest, endpoint_url, profile, max_connections=2 * jobs)
    result = PublishResult(dest, objects, dry_run=dry_run)
    remote = read_remote_manifest(store)
    committed = remote is not None and _same_dataset(remote, objects)
    if remote is not None and not committed and not overwrite:
        raise PublishRefused(f"{safe_uri(dest)}: holds a different published dataset ({MANIFEST_KEY} lists other "
                             f"objects); pass --overwrite to replace it")
    pending = _run_all(lambda o: _needs_upload(store, o, recheck), objects, jobs)
    todo = [o for o, need in zip(objects, pending) if need]
    result.uploaded = [o.key for o in todo]
    result.skipped = [o.key for o, need in zip(objects, pending) if not need]
    result.bytes_uploaded = sum(o.size for o in todo)
    if dry_run:
        return result
    replacing = remote is not None and not committed
    if replacing or not store.abandons_bad_uploads:
        # Checking while uploading would come too late: the live marker about to be deleted would be lost for
        # a work directory that is then refused, or a store that cannot abandon an upload would keep bad bytes.
        # Only here are the shards to send read twice.
        prove_sources(todo, jobs)
    if replacing:
        store.delete(MANIFEST_KEY)  # the old marker would vouch for objects about to change
    _upload_all(store, todo, jobs, result)
    # Committed and skipped objects were read back when the marker was written; everything else is read now.
    to_check = todo if committed else objects
    started = time.perf_counter()
    mismatches = check_objects(store, to_check, jobs)
    result.seconds_verify = time.perf_counter() - started
    if mismatches:
        raise PublishError(f"{safe_uri(dest)}: read-back failed, {MANIFEST_KEY} not written: "
                           + "; ".join(map(str, mismatches)))
    result.verified = [o.key for o in to_check]
    data = json.dumps(publish_manifest(objects), indent=2, sort_keys=True).encode() + b"\n"
    if not (committed and not todo):  # an unchanged commit keeps its original marker (and timestamp)
        store.put_bytes(MANIFEST_KEY, data, sha256=hashlib.sha256(data).hexdigest())
        result.marker_written = True
    result.committed = True
    return result


def verify(dest: str, *, endpoint_url: str | None = None, profile: str | None = None,
           jobs: int = 8) -> tuple[dict, list[Mismatch]]:
    """Reads back every object the remote marker lists; returns the marker and the mismatches."""
    store = open_store(dest, endpoint_url, profile, max_connections=2 * jobs)
    manifest = read_remote_manifest(store)
    if manifest is None:
        raise PublishError(f"{safe_uri(dest)}: no {MANIFEST_KEY}: nothing published there, or a publish did not finish")
    objects = [LocalObject(e["key"], WorkPath("."), e["bytes"], e["sha256"]) for e in manifest["objects"]]
    return manifest, check_objects(store, objects, jobs)
