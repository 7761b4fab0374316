"""Object stores for `curate publish` / `curate verify`: one small interface, three backends.

    S3Store      s3:// (AWS, MinIO, R2, moto: any S3-protocol endpoint via --endpoint-url). Bytes go
                 through smart_open (single PUT below PART_SIZE, multipart above); head/delete through the
                 same boto3 client. The sha256 is stored as user metadata (x-amz-meta-sha256).
    LocalStore   file:// URIs and plain paths. Writes are atomic (temporary name + rename).
    GenericStore gs://, azure:// and anything else smart_open opens. No metadata: an object's checksum
                 is found by reading it back.

`Store.upload` hashes the bytes as they stream from the source and compares them with the sha256 it was
given (the one it records as metadata) before the upload completes: bytes that are not the announced ones
raise `BytesDiffer` and, where the store can (`abandons_bad_uploads`), never become an object.

Credentials come only from the standard chains (environment, shared config/profiles, instance
roles); a URI carrying credentials is refused so that they can never reach a log line or a manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import smart_open

from curate.errors import CurateError

CHUNK = 1 << 20
# Same threshold and part size as boto3's TransferConfig defaults (8 MiB), so a shard is split the way
# `upload_file` would split it; S3 requires parts of at least 5 MiB.
PART_SIZE = 8 << 20
SHA256_META = "sha256"
# Loggers that print request headers at DEBUG level (the Authorization header names the access key id).
_CHATTY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "smart_open", "google", "azure")


class StoreError(CurateError):
    """A destination cannot be opened or an object operation fails."""


class BytesDiffer(StoreError):
    """The bytes read from an upload's source are not the size and sha256 the upload announced. Raised inside
    the writer, so a store with `abandons_bad_uploads` abandons the upload and no object appears."""

    def __init__(self, key: str, size: int, sha256: str):
        super().__init__(f"{key}: source bytes differ from the expected ones (size {size}, sha256 {sha256[:12]}…)")
        self.size, self.sha256 = size, sha256


class StoreUsageError(CurateError):
    """The destination URI is not acceptable (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class RemoteObject:
    size: int
    sha256: str | None  # None when the store keeps no checksum metadata for the object


def sha256_stream(fh, on_bytes: Callable[[int], None] | None = None) -> tuple[int, str]:
    """(size, sha256 hex) of a binary stream, read in 1 MiB chunks (hashlib releases the GIL on them)."""
    h, size = hashlib.sha256(), 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return size, h.hexdigest()


def copy_checked(key: str, path, out, size: int, sha256: str, on_bytes: Callable[[int], None]) -> None:
    """Streams the file at `path` (a WorkPath) into the open writer `out`, hashing it on the way: one read of
    the source. Raises BytesDiffer before returning, i.e. before the caller's writer is closed, when the
    bytes are not `size` bytes with `sha256`."""
    h, sent = hashlib.sha256(), 0
    with path.open_stream() as src:
        while chunk := src.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
            sent += len(chunk)
            on_bytes(len(chunk))
    if sent != size or h.hexdigest() != sha256:
        raise BytesDiffer(key, sent, h.hexdigest())


def _credentials_end(uri: str) -> int:
    """Index just past a user-info part ("key:secret@") of the URI, 0 if there is none. For s3:// this
    follows smart_open, which reads everything before the first '@' as credentials (AWS secrets may
    contain '/', so the host part cannot be trusted to end at the first '/')."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return 0
    at = rest.find("@") if scheme.startswith("s3") else rest.split("/", 1)[0].rfind("@")
    return len(scheme) + len(sep) + at + 1 if at >= 0 else 0


def refuse_credentials(uri: str) -> None:
    """Raise StoreUsageError for a URI with credentials in it (`s3://key:secret@bucket`): they would end up
    in logs, manifests and process listings. Used by every place that opens a store or a work directory."""
    if _credentials_end(uri):
        raise StoreUsageError(f"{safe_uri(uri)}: credentials in the URI are refused; use the environment or a profile")


def safe_uri(uri: str) -> str:
    """The URI without any user-info part, for messages."""
    end = _credentials_end(uri)
    return uri[: uri.index("://") + 3] + uri[end:] if end else uri


def quiet_transport_logs() -> None:
    """Even under `curate -v`, transport libraries log at INFO at most: their DEBUG output has signed headers."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


class Store:
    """Keys are '/'-separated paths relative to the destination root."""

    uri: str
    # An upload that raises before it completes leaves no object (and the key's previous object, if any).
    abandons_bad_uploads = True

    def stat(self, key: str, read_back: bool = False) -> RemoteObject | None:
        """Size and recorded sha256 of an object, None if absent; read_back hashes the bytes themselves."""
        raise NotImplementedError

    def upload(self, key: str, path, size: int, sha256: str, on_bytes: Callable[[int], None]) -> None:
        """Copies the file at `path` (a `curate.workpath.WorkPath`: on disk or in another store) to `key`,
        reading it once; raises BytesDiffer (see `copy_checked`) when its bytes are not `size` and `sha256`."""
        raise NotImplementedError

    def open_read(self, key: str):
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes, sha256: str) -> None:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes (small objects: the manifest), None if it is absent."""
        try:
            with self.open_read(key) as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def hash_object(self, key: str, on_bytes: Callable[[int], None] | None = None) -> tuple[int, str] | None:
        """(size, sha256) of the stored bytes, None if the object is absent."""
        try:
            with self.open_read(key) as fh:
                return sha256_stream(fh, on_bytes)
        except FileNotFoundError:
            return None


class LocalStore(Store):
    def __init__(self, root: Path):
        self.root = root
        self.uri = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def stat(self, key, read_back=False):
        path = self._path(key)
        if not path.is_file():
            return None
        size, digest = self.hash_object(key)  # no metadata on a file system: the bytes are the checksum
        return RemoteObject(size, digest)

    def _atomic_write(self, key: str, write: Callable) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as out:
                write(out)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def upload(self, key, path, size, sha256, on_bytes):
        self._atomic_write(key, lambda out: copy_checked(key, path, out, size, sha256, on_bytes))

    def open_read(self, key):
        return open(self._path(key), "rb")

    def put_bytes(self, key, data, sha256):
        self._atomic_write(key, lambda out: out.write(data))

    def read_bytes(self, key):
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)


class S3Store(Store):
    def __init__(self, uri: str, endpoint_url: str | None, profile: str | None, max_connections: int):
        import boto3
        import botocore.config

        parts = urlsplit(uri)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.uri = uri
        session = boto3.session.Session(profile_name=profile)
        config = botocore.config.Config(max_pool_connections=max_connections, retries={"max_attempts": 6, "mode": "standard"})
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._errors = self.client.exceptions

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _params(self, sha256: str | None = None, multipart: bool = False) -> dict:
        params = {"client": self.client}
        if sha256 is not None:
            meta = {"Metadata": {SHA256_META: sha256}}
            params["client_kwargs"] = {"S3.Client.put_object": meta, "S3.Client.create_multipart_upload": meta}
            params["multipart_upload"] = multipart
            params["min_part_size"] = PART_SIZE
        return params

    def _head(self, key: str) -> dict | None:
        import botocore.exceptions

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"{self._uri(key)}: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:  # endpoint unreachable, no credentials, ...
            raise StoreError(f"{self._uri(key)}: {exc}") from exc

    def stat(self, key, read_back=False):
        head = self._head(key)
        if head is None:
            return None
        if read_back:
            size, digest = self.hash_object(key)
            return RemoteObject(size, digest)
        return RemoteObject(head["ContentLength"], head.get("Metadata", {}).get(SHA256_META))

    def upload(self, key, path, size, sha256, on_bytes):
        # smart_open's writers terminate on an exception: a single PUT is never sent, a multipart upload is aborted
        params = self._params(sha256, multipart=size > PART_SIZE)
        with smart_open.open(self._uri(key), "wb", transport_params=params, compression="disable") as out:
            copy_checked(key, path, out, size, sha256, on_bytes)

    def open_read(self, key):
        if self._head(key) is None:
            raise FileNotFoundError(self._uri(key))
        return smart_open.open(self._uri(key), "rb", transport_params=self._params(), compression="disable")

    def put_bytes(self, key, data, sha256):
        try:
            with smart_open.open(self._uri(key), "wb", transport_params=self._params(sha256), compression="disable") as out:
                out.write(data)
        except Exception as exc:  # botocore's and smart_open's (ValueError for a missing bucket)
            raise StoreError(f"{self._uri(key)}: {type(exc).__name__}: {exc}") from exc

    def delete(self, key):
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise StoreError(f"{self._uri(key)}: {type(exc).__name__}: {exc}") from exc


class GenericStore(Store):
    """Any smart_open scheme (gs://, azure://): credentials from the library's own default chain."""

    # smart_open's gcs writer completes the upload when its block is left, even on an exception
    abandons_bad_uploads = False

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.params = _azure_params() if uri.startswith("azure://") else {}

    def _uri(self, key: str) -> str:
        return f"{self.uri}/{key}"

    def stat(self, key, read_back=False):
        found = self.hash_object(key)  # no portable metadata API in smart_open: read the bytes back
        return RemoteObject(*found) if found else None

    def open_read(self, key):
        try:
            return smart_open.open(self._uri(key), "rb", transport_params=self.params, compression="disable")
        except Exception as exc:  # each SDK has its own not-found class; all of them say so in the name
            if re.search(r"NotFound|NoSuchKey|404", type(exc).__name__ + str(exc)):
                raise FileNotFoundError(self._uri(key)) from exc
            raise

    def upload(self, key, path, size, sha256, on_bytes):
        with smart_open.open(self._uri(key), "wb", transport_params=self.params, compression="disable") as out:
            copy_checked(key, path, out, size, sha256, on_bytes)

    def put_bytes(self, key, data, sha256):
        with smart_open.open(self._uri(key), "wb", transport_params=self.params, compression="disable") as out:
            out.write(data)

    def delete(self, key):
        raise StoreError(f"{safe_uri(self._uri(key))}: deleting is not supported on this store; remove it by hand")


def _azure_params() -> dict:
    """smart_open's azure backend needs a client; the standard connection-string variable provides it."""
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as exc:
        raise StoreUsageError("azure:// needs the azure-storage-blob package") from exc
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if not conn:
        raise StoreUsageError("azure://: set AZURE_STORAGE_CONNECTION_STRING in the environment")
    return {"client": BlobServiceClient.from_connection_string(conn)}


def open_store(dest: str, endpoint_url: str | None = None, profile: str | None = None,
               max_connections: int = 16) -> Store:
    """The store for a destination URI: s3://, gs://, azure://, file:// or a plain path."""
    parts = urlsplit(dest)
    refuse_credentials(dest)
    quiet_transport_logs()
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StoreUsageError(f"{dest}: no bucket")
        return S3Store(dest, endpoint_url, profile, max_connections)
    if endpoint_url:
        raise StoreUsageError(f"{dest}: --endpoint-url applies to s3:// destinations only")
    if parts.scheme == "file":
        return LocalStore(Path(dest[len("file://"):]))  # file:///abs and file://relative alike
    if parts.scheme in ("", ) or re.fullmatch(r"[A-Za-z]", parts.scheme):  # a path (or a Windows drive)
        return LocalStore(Path(dest))
    return GenericStore(dest)
