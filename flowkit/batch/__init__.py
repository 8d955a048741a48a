"""Many captures into a Hive-partitioned Parquet flow dataset, in-process or on Dask.

    >>> import flowkit
    >>> manifest = flowkit.batch(["captures/"], "out", stitch=True, workers=2)
    >>> flowkit.read_dataset("out", filters=[("date", "=", "2024-01-01")]).to_pandas()

Documented in docs/batch.md.
"""
from flowkit._callable import make_callable
from flowkit.batch.dataset import open_dataset, read_dataset
from flowkit.batch.forget import forget
from flowkit.batch.run import batch

__all__ = ["batch", "forget", "read_dataset", "open_dataset"]

make_callable(__name__, "batch")
