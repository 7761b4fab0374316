"""The engine: the only module that imports Ray.

It runs plain task functions over lists of picklable arguments and returns their results in input
order, so what a stage computes never depends on scheduling. `RayEngine` starts an embedded local Ray
(all of the machine's CPUs) or joins a cluster (`address`, or the RAY_ADDRESS environment variable);
`LocalEngine` runs the same tasks in this process, which tests use to compare against Ray. Before joining a
cluster the engine settles Ray's token authentication (`_join_auth`, with `curate.cluster`): the cluster is asked
once, and a refusal becomes one error naming what to set, in about a second rather than Ray's 20 s of warnings.

The embedded Ray (`_start_embedded`) is Ray's own head node with two processes left out that an embedded run
never uses: the autoscaler monitor (nothing to scale; it also ignores SIGTERM, so every shutdown waited Ray's 1 s
grace for it) and the dashboard's API server (include_dashboard=False still starts it, and `ray.init` waits for it
to publish its address). The raylet, the GCS, the log monitor (worker output reaches the terminal) and the agents
the raylet starts itself are all there, started as `ray.init` starts them. Two of Ray's one-second waits are cut:
the raylet's registration is polled every 20 ms (Ray's lookup sleeps 1 s per miss) and a local socket connection
is retried every 100 ms instead of every 1 s (`EMBEDDED_SYSTEM_CONFIG`). Start and stop went from ~2.4-3.4 s and
~1.1-1.3 s to ~1.5-1.7 s and ~0.1-0.3 s on the 2-core machine (README, Benchmarks).

Why Ray Core tasks over stable partitions rather than Ray Data's `map_batches`: a task per named
partition writes its own output atomically, so resume is per partition and outputs are byte-identical
whatever the cluster; Ray Data's block ids and block boundaries change between runs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from curate import cluster, workpath
from curate.errors import ClusterError, CurateError, StageError

log = logging.getLogger("curate")


class LocalEngine:
    """Runs tasks sequentially in this process."""

    name = "local"
    num_cpus = 1

    def map(self, fn: Callable, items: Sequence[Any], desc: str = "") -> list:
        store = workpath.options()
        return [_call(store, fn, *_args(item)) for item in tqdm(items, desc=desc, unit="task", disable=None, leave=False)]

    def close(self) -> None:
        pass


def _args(item: Any) -> tuple:
    return item if isinstance(item, tuple) else (item,)


def _call(store: workpath.StoreOptions, fn: Callable, *args: Any) -> Any:
    """Every task goes through here: the one place for the crash tests' fault-injection delay, and where a
    worker takes the driver's store options (endpoint and profile names, never credentials: each node
    resolves those from its own AWS environment)."""
    workpath.configure(store)
    if delay := float(os.environ.get("CURATE_TASK_DELAY", "0")):
        import time

        time.sleep(delay)  # widens the window in which a test kills the run mid-stage
    return fn(*args)


class RayEngine:
    """Runs tasks as Ray tasks; Ray retries tasks whose worker process dies."""

    name = "ray"
    _node = None  # the embedded head node this engine started (None when it joined a cluster)

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3):
        import ray

        self.ray = ray
        self.max_retries = max_retries
        self.owner = not ray.is_initialized()
        if self.owner:
            address = address or os.environ.get("RAY_ADDRESS") or None
            kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                                          configure_logging=True, log_to_driver=True)
            if address:
                import curate

                # Workers on other nodes get this exact package, so every node runs the same code.
                kwargs["runtime_env"] = {"py_modules": [os.path.dirname(curate.__file__)]}
                _join_auth(ray, address)
                try:
                    ray.init(address=address, **kwargs)
                except ConnectionError as exc:  # the GCS answered the probe, then went away
                    raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from None
            else:  # "local": a new embedded Ray, even if `ray start` left a cluster address on this machine
                self._node = _try_start_embedded(num_cpus or os.cpu_count() or 1)
                if self._node is None:  # Ray's own start, as before (another Ray version, or asked for)
                    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **kwargs)
                else:
                    try:
                        ray.init(address=self._node.address, **kwargs)
                    except BaseException:
                        self.close()
                        raise
        self.num_cpus = int(ray.cluster_resources().get("CPU", 1))

    def map(self, fn: Callable, items: Sequence[Any], desc: str = "") -> list:
        if not items:
            return []
        remote = self.ray.remote(max_retries=self.max_retries, num_cpus=1)(_call).options(name=fn.__name__)
        store = workpath.options()
        refs = [remote.remote(store, fn, *_args(item)) for item in items]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc=desc, unit="task", leave=False, disable=None) as bar:  # None: only on a terminal
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                try:
                    results[position[done[0]]] = self.ray.get(done[0])
                except self.ray.exceptions.RayTaskError as exc:
                    for ref in pending:
                        self.ray.cancel(ref, force=True)
                    raise _unwrap(exc) from None
                bar.update(1)
        return results

    def close(self) -> None:
        """Disconnect, then stop the embedded node's processes (SIGTERM, SIGKILL after 1 s, as `ray.shutdown`
        does for a node `ray.init` started). Safe to call twice."""
        if self.owner and self.ray.is_initialized():
            self.ray.shutdown()
        node, self._node = self._node, None
        if node is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=True)


# Ray's retry interval for a client connecting to a local socket (the raylet's own plasma client to the object store
# it starts in a thread; workers to the raylet) is 1 s: when the first attempt comes before the socket listens, start
# waits a whole second. 100 ms x 100 attempts keeps Ray's 10 s budget (1000 ms x 10).
EMBEDDED_SYSTEM_CONFIG = {"raylet_client_connect_timeout_milliseconds": 100, "raylet_client_num_connect_attempts": 100}


def _try_start_embedded(num_cpus: int):
    """`_start_embedded`, or None for Ray's own `ray.init(address="local")`: when CURATE_RAY_PLAIN_START=1, or
    when this Ray's private node API is not the one `_start_embedded` was written for (a Ray other than the
    pinned 2.60.x): a slower start, never a failed one."""
    if os.environ.get("CURATE_RAY_PLAIN_START") == "1":
        return None
    try:
        return _start_embedded(num_cpus)
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("embedded Ray: Ray %s's node API differs (%s); starting it with ray.init instead (~2.5 s slower)",
                    _ray_version(), exc)
        return None


def _ray_version() -> str:
    import ray

    return getattr(ray, "__version__", "?")


def _start_embedded(num_cpus: int):
    """Start a new single-node Ray for this process, as `ray.init(address="local")` does (same token setup, usage
    stats off, a head node whose processes die with this one), without the monitor and the API server."""
    from ray._common.usage import usage_lib
    from ray._private import node, parameter
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    class EmbeddedNode(node.Node):
        def start_api_server(self, *, include_dashboard, raise_on_failure) -> None:
            pass  # dashboard, job and state APIs: none of them is used by a run; ray.init would wait for it

        def start_ray_processes(self) -> None:
            super().start_ray_processes()
            _await_registration(self)

    enable_token_auth_by_default()
    # a copy per start: Ray writes this node's settings into the dict it is given (the object spilling directory
    # in this session's folder), which a second start in the same process must not inherit
    system_config = dict(EMBEDDED_SYSTEM_CONFIG)
    ensure_token_if_auth_enabled(system_config, create_token_if_missing=True)
    usage_lib.set_usage_stats_enabled_via_env_var(False)
    params = parameter.RayParams(num_cpus=num_cpus, include_dashboard=False, no_monitor=True,
                                 _system_config=system_config)
    return EmbeddedNode(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)


def _await_registration(node, poll_s: float = 0.02, timeout_s: float = 30.0) -> None:
    """Return once the raylet has registered with the GCS (or died, or `timeout_s` passed: Node's own check then
    reports it). Node.__init__ asks the GCS for the new node next, and Ray's lookup sleeps a whole second each time
    the node is not there yet; the raylet registers only once its agents are up (0.5-1.2 s here), so without this
    poll every start took 1.1 or 2.1 s at that step."""
    import time

    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and raylet.poll() is None:
        try:
            if any(n.hex() == node.node_id for n in node.get_gcs_client().get_all_node_info(timeout=5)):
                return
        except Exception:  # noqa: BLE001  the GCS not answering yet; Node's own lookup decides what is wrong
            pass
        time.sleep(poll_s)


def _join_auth(ray, address: str) -> None:
    """Make this process authenticate the way the cluster at `address` requires, or refuse with one clear error.

    The cluster is asked first as the environment stands, so a token is only sent to a cluster that asks for
    one. If it asks and RAY_AUTH_MODE is unset, token mode is turned on for this process when a token is
    available (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token, Ray's order). Never turns auth off.
    """
    cluster.check_reachable(address)
    token_mode = os.environ.get(cluster.MODE_VAR, "").lower() == "token"
    if token_mode and cluster.token_source() is None:  # token_source also refuses a bad RAY_AUTH_TOKEN_PATH,
        raise cluster.missing_token_error(address)     # on which Ray would abort the process
    if not _refuses_auth(ray, address):
        return
    if token_mode:
        raise cluster.refused_token_error(address)
    if not cluster.may_enable_token_mode():
        raise cluster.missing_token_error(address)
    _enable_token_mode()
    if _refuses_auth(ray, address):
        raise cluster.refused_token_error(address)


def _refuses_auth(ray, address: str) -> bool:
    """Ask the cluster's GCS for its id, authenticated as this process is now: True if it refuses."""
    if cluster.gcs_host_port(address) is None:
        return False  # auto / ray://: Ray finds the cluster and settles auth itself
    from ray._raylet import GcsClient

    try:
        with _quiet_stderr():  # Ray's C++ client logs each refusal as a warning line; our error says it once
            GcsClient(address=address)
    except ray.exceptions.AuthenticationError:
        return True
    except ray.exceptions.RpcError as exc:
        raise ClusterError(f"no Ray cluster answered at {address}: {exc}", usage=True) from None
    return False


def _enable_token_mode() -> None:
    """RAY_AUTH_MODE=token for this process (and Ray processes it starts), as Ray's own `ray.init` does it."""
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ[cluster.MODE_VAR] = "token"
    Config.initialize("")  # Ray caches the mode in its C++ config; re-read it from the environment
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: Ray's C++ logging writes there directly."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _unwrap(exc: Exception) -> Exception:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, CurateError):
        return cause
    if isinstance(cause, OSError):  # disk full, permission denied, vanished file: infrastructure, not a bug
        return StageError(f"{cause.filename or 'I/O'}: {cause.strerror or cause}")
    return StageError(f"a task failed (a bug, not bad data; please report it):\n{exc}")
