"""Running units of work: in this process, or on a Ray cluster through Ray Data.

Both paths call the same worker (`work.make_worker`). On Ray the units become a Ray Data
dataset of one row each, mapped by an actor pool: each actor builds its worker once (loads the
model once) and turns one unit into one shard per call. Ray Data restarts killed actors and
retries their calls; the workers are idempotent, so a retry rewrites the same shard.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from neurcodec.dataset import work
from neurcodec.dataset.sources import Unit
from neurcodec.errors import NeurcodecError, UsageError

OnRecord = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Engine:
    """`ray` None: in-process; "local": a private Ray instance on this machine; "auto": the
    running cluster Ray finds (RAY_ADDRESS, or one started here with `ray start`); otherwise a
    cluster address (`HOST:PORT` or `ray://HOST:PORT`)."""

    ray: str | None = None
    workers: int | None = None  # Ray: actors in the pool (default: the cluster's CPUs / cpus_per_worker)
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0

    @property
    def label(self) -> str:
        return "in-process" if self.ray is None else f"ray ({self.ray})"


def run(kind: str, root: str, settings: Any, placement: work.Placement, units: list[Unit], engine: Engine, on_record: OnRecord) -> None:
    """Turn every unit into its shard, calling `on_record` with each shard's record as it lands."""
    if not units:
        return
    if engine.ray is None:
        worker = work.WORKERS[kind](root, settings, placement)
        for unit in units:
            on_record(worker(unit))
        return
    _run_on_ray(kind, root, settings, placement, units, engine, on_record)


def ray_worker_class(kind: str, root: str, settings: dict[str, Any], placement: dict[str, Any]) -> type:
    """The actor-pool callable: builds the worker once per actor, one unit per batch row.

    The job's settings are baked into the class (shipped with it) rather than passed as
    constructor arguments, which Ray Data keeps in the object store where an actor restarted
    after its node died might not find them."""

    class NeurcodecWorker:
        def __init__(self) -> None:
            self.worker = work.make_worker(kind, root, settings, placement)

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            import numpy as np

            records = [json.dumps(self.worker(Unit.from_json(json.loads(u)))) for u in batch["unit"]]
            return {"record": np.array(records, dtype=object)}

    return NeurcodecWorker


def _run_on_ray(kind: str, root: str, settings: Any, placement: work.Placement, units: list[Unit], engine: Engine, on_record: OnRecord) -> None:
    ray = _import_ray()
    with _native_stderr_to(_driver_log(root)):
        _run_ray_job(ray, kind, root, settings, placement, units, engine, on_record)


@contextlib.contextmanager
def _native_stderr_to(path: str) -> Iterator[None]:
    """Send what Ray's C++ core writes to file descriptor 2 into `path`, keeping Python's
    `sys.stderr` (our progress, summary and errors) on the real stderr. Ray's core worker in the
    driver logs there; one message (ray-project/ray#53727, about Ray Data's own actor arguments)
    prints on every run."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except (OSError, ValueError):  # no real stderr (embedded): nothing to keep apart
        yield
        return
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None) or "utf-8", errors="replace")
    os.dup2(log, 2)
    os.close(log)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = python_stderr


def _driver_log(root: str) -> str:
    from neurcodec.dataset import storage

    fs, path = storage.resolve(root)
    if storage.is_local(fs):
        return posixpath.join(work.state_paths(path)[0], "ray-driver.log")
    return os.path.join(tempfile.gettempdir(), f"neurcodec-ray-driver-{os.getpid()}.log")


def _run_ray_job(ray: Any, kind: str, root: str, settings: Any, placement: work.Placement, units: list[Unit], engine: Engine, on_record: OnRecord) -> None:
    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, engine)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is the one progress bar
        ctx.print_on_execution_start = False
        ctx.raise_original_map_exception = True  # a worker's NeurcodecError reaches us as itself
        for handler in logging.getLogger("ray.data").handlers:  # Ray Data's own log file keeps everything
            if type(handler).__name__ != "SessionFileHandler":
                handler.setLevel(logging.ERROR)
        workers = engine.workers or _default_workers(ray, engine)
        per_worker = work.Placement(placement.device, placement.dtype, placement.threads or engine.cpus_per_worker)
        dataset = ray.data.from_items([{"unit": json.dumps(u.to_json())} for u in units], override_num_blocks=len(units))
        mapped = dataset.map_batches(
            ray_worker_class(kind, root, asdict(settings), asdict(per_worker)),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(units))),
            num_cpus=engine.cpus_per_worker,
            num_gpus=engine.gpus_per_worker or None,
        )
        try:
            for row in mapped.iter_rows():
                on_record(json.loads(row["record"]))
        except Exception as exc:
            cause = _neurcodec_cause(exc)
            if cause is None:
                raise
            # A worker's one-line error (missing weights …) as it reads in-process; Ray Data
            # appends its retry advice to the message.
            raise type(cause)(_first_line(cause)) from None
    finally:
        if started_here:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--ray needs Ray Data: pip install 'neurcodec[scale]'") from None
    return ray


def _init(ray: Any, engine: Engine) -> None:
    # Quiet: the job reports through its own progress bar and summary; workers' logs stay in
    # Ray's log folder instead of interleaving with ours on stderr.
    options: dict[str, Any] = dict(log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)
    if engine.ray == "local":
        cpus = engine.workers * engine.cpus_per_worker if engine.workers else None
        ray.init(address="local", num_cpus=cpus, **options)  # "local": never join a running cluster
    else:
        try:
            ray.init(address=engine.ray, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--ray {engine.ray}: cannot connect to a Ray cluster ({_first_line(exc)})") from None


def _default_workers(ray: Any, engine: Engine) -> int:
    resources = ray.cluster_resources()
    by_cpu = int(resources.get("CPU", 1) // max(engine.cpus_per_worker, 1))
    if engine.gpus_per_worker:
        return max(1, min(by_cpu, int(resources.get("GPU", 0) // engine.gpus_per_worker)))
    return max(1, by_cpu)


def _neurcodec_cause(exc: BaseException) -> NeurcodecError | None:
    """The NeurcodecError a worker raised, under Ray's wrappers (a RayTaskError subclasses the
    error it carries, but its message is the remote traceback: the innermost one is the worker's)."""
    found: NeurcodecError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NeurcodecError):
            found = current
        current = getattr(current, "cause", None) or current.__cause__
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def count_images(units: Iterable[Unit]) -> int | None:
    """Images in the units when known before reading them (file lists), else None."""
    total = 0
    for unit in units:
        if unit.kind != "files":
            return None
        total += len(unit.uris)
    return total
