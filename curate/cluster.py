"""Joining a Ray cluster: the address, the reachability check and Ray's token authentication, without Ray.

Ray (2.52+) authenticates every client of a cluster started with `RAY_AUTH_MODE=token` by a shared token; Ray
2.59's `ray start --head` turns it on by itself when a token already exists (`~/.ray/auth_token`, which any
embedded `ray.init()` creates). A client that does not send the token is refused, and Ray's own client retries
for 20 s, logging `InvalidAuthToken` once a second, before a bare `Failed to connect`. So the engine asks the
cluster once, quickly, before `ray.init` (see `engine._join_auth`), and this module holds what that needs
without importing Ray: where the token comes from (Ray's documented order), and the one-paragraph messages.

Nothing here reads the token's value beyond checking that it is there; it is never logged, written or shown.
Authentication is never turned off: the only mode curate ever sets is `token`, and only after the cluster has
asked for it and a token is available.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from curate.errors import ClusterError

MODE_VAR, TOKEN_VAR, TOKEN_PATH_VAR = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = Path("~/.ray/auth_token")  # Ray's default token file; `ray get-auth-token --generate` writes it
HOW_TO = (f"Set {MODE_VAR}=token and give the cluster's token in {TOKEN_VAR}, or in a file named by "
          f"{TOKEN_PATH_VAR}, or in {DEFAULT_TOKEN_PATH} (on the head node, `ray get-auth-token` prints it); "
          "see README, 'Running on a Ray cluster'.")


def gcs_host_port(address: str) -> tuple[str, int] | None:
    """`host:port` of a GCS address, or None for the forms Ray resolves itself (`auto`, `local`, `ray://…`)."""
    if address in ("auto", "local") or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r}: expected HOST:PORT of the head node (e.g. 10.0.0.1:6379)",
                           usage=True)
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on in seconds (exit 2), rather than after Ray's 40 s of retries."""
    target = gcs_host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster at {address}: {exc.strerror or exc} (is the head node started with "
                           "`ray start --head`, and is the port the one it printed?)", usage=True) from None


def token_source() -> str | None:
    """Where Ray would take the token from, in Ray's documented order, or None if there is none.

    A `RAY_AUTH_TOKEN_PATH` that names a missing or empty file is an error here: Ray aborts the whole process
    (a C++ fatal error, core dump) when it meets one in token mode.
    """
    if os.environ.get(TOKEN_VAR, "").strip():
        return TOKEN_VAR
    if path := os.environ.get(TOKEN_PATH_VAR):
        if not _non_empty_file(Path(path)):
            raise ClusterError(f"{TOKEN_PATH_VAR}={path}: not a readable, non-empty token file. {HOW_TO}")
        return f"{TOKEN_PATH_VAR} ({path})"
    if _non_empty_file(DEFAULT_TOKEN_PATH.expanduser()):
        return str(DEFAULT_TOKEN_PATH)
    return None


def _non_empty_file(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def may_enable_token_mode() -> bool:
    """True when the cluster asked for a token and curate may answer with one: the mode is not set by the user
    (an explicit `RAY_AUTH_MODE` is respected, never overridden) and a token is available. This is Ray's own rule
    for a local cluster found with `address="auto"`, applied once the cluster has shown that it needs the token."""
    return os.environ.get(MODE_VAR) is None and token_source() is not None


def missing_token_error(address: str) -> ClusterError:
    """The cluster requires a token and this client has none to send (or is told not to send one)."""
    mode = os.environ.get(MODE_VAR)
    if mode is not None and mode.lower() != "token":
        why = f"{MODE_VAR}={mode} in this environment, so no token was sent"
    else:
        why = f"no token was found ({TOKEN_VAR}, {TOKEN_PATH_VAR} and {DEFAULT_TOKEN_PATH} are unset or empty)"
    return ClusterError(f"the Ray cluster at {address} requires token authentication and {why}. {HOW_TO}")


def refused_token_error(address: str) -> ClusterError:
    """The cluster refused the token this client sent: it is another cluster's."""
    return ClusterError(f"the Ray cluster at {address} refused the authentication token from {token_source()}: it "
                        f"is not this cluster's token. {HOW_TO}")
