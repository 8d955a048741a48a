"""Where pieces run: this process, a LocalCluster started for the run, or an existing Dask cluster.

Both executors yield ``(item, result)`` as results arrive; the batch driver does not
depend on the order, so the dataset is the same whichever executor ran it.
"""
from __future__ import annotations

import os

from flowkit.errors import FlowkitError


class InProcess:
    """Run each piece here, one after the other (results come lazily, memory stays per unit)."""

    description = "in-process"

    def run(self, fn, items, *args):
        for item in items:
            yield item, fn(item, *args)

    def close(self) -> None:
        pass


# Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also switches off glibc's
# adaptive mmap threshold: every multi-megabyte numpy/Arrow buffer is then mmap'ed and
# unmapped again, and flowkit ran 2-3x slower per task (measured, docs/batch.md). Our own
# clusters get thresholds sized for 16 MiB capture chunks instead.
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": str(128 << 20), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def local_cluster(n_workers: int, **kwargs):
    """The LocalCluster ``workers=N`` runs on: N processes, one thread each, tuned malloc."""
    import dask
    from distributed import LocalCluster

    settings = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENVIRON.items()}
    with dask.config.set(settings):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=":0", **kwargs)


class DaskExecutor:
    """Run pieces on dask.distributed: ``workers=N`` starts a LocalCluster of N processes
    (one thread each, since the flow code holds the GIL); ``scheduler`` is an address
    or a ``distributed.Client`` of a cluster that already runs. Workers must see the
    capture paths (same machine or a shared file system)."""

    def __init__(self, workers: int | None = None, scheduler=None):
        try:
            from distributed import Client
        except ImportError as exc:  # optional dependency (pip install flowkit[dask])
            raise FlowkitError("dask.distributed is not installed (pip install 'flowkit[dask]')") from exc
        self._cluster = None
        self._own_client = True
        if scheduler is not None and not isinstance(scheduler, str):
            self.client = scheduler  # a Client the caller manages
            self._own_client = False
        elif scheduler is not None:
            _check_reachable(scheduler)
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise FlowkitError(f"{scheduler}: cannot reach the Dask scheduler: {exc}") from exc
        else:
            self._cluster = local_cluster(workers)
            try:
                self.client = Client(self._cluster)
            except BaseException:
                self._cluster.close()
                raise
        n = len(self.client.scheduler_info().get("workers", {}))
        where = "LocalCluster" if self._cluster is not None else self.client.scheduler.address
        self.description = f"dask {where} ({n} workers)"

    def run(self, fn, items, *args):
        from distributed import as_completed

        items = list(items)
        futures = {self.client.submit(fn, item, *args, pure=False): item for item in items}
        try:
            for future in as_completed(list(futures)):
                item = futures.pop(future)
                result = future.result()
                future.release()
                yield item, result
        finally:  # stopped early (error, interrupt): leave nothing running on a shared cluster
            if futures:
                self.client.cancel(list(futures))

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _check_reachable(address: str) -> None:
    """Fail in a second, with one line, when nothing listens at a tcp:// scheduler address
    (the Dask client would otherwise retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    if "://" not in address:
        address = "tcp://" + address
    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return  # other transports (tls, inproc, ucx): let the client judge
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as exc:
        raise FlowkitError(f"{address}: cannot reach the Dask scheduler: {exc.strerror or exc}") from None


def check_arguments(workers: int | None, scheduler) -> None:
    if scheduler is not None and workers is not None:
        raise FlowkitError("give workers (a local cluster) or scheduler (a running one), not both")
    if workers is not None and workers < 1:
        raise FlowkitError(f"workers must be at least 1, not {workers}")


def make_executor(workers: int | None = None, scheduler=None):
    """Pick the executor from the arguments (and ``DASK_SCHEDULER_ADDRESS`` when neither is given)."""
    check_arguments(workers, scheduler)
    if scheduler is None and workers is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if scheduler is None and workers is None:
        return InProcess()
    return DaskExecutor(workers=workers, scheduler=scheduler)
