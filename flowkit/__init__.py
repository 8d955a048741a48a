"""flowkit: packet captures into a columnar five-tuple flow table, and the analyses on it.

    >>> import flowkit
    >>> table = flowkit.flows("capture.pcap")      # FlowTable backed by Arrow
    >>> df = table.to_pandas()
    >>> flowkit.analysis.handshakes(table)
"""
from __future__ import annotations

__version__ = "0.1.0"

from flowkit.errors import CaptureError, FlowkitError  # noqa: E402
from flowkit.decode import packets  # noqa: E402
from flowkit import flows  # noqa: E402  (callable package: flowkit.flows(source, ...))
from flowkit import analysis  # noqa: E402
from flowkit import batch  # noqa: E402  (callable package: flowkit.batch(inputs, out, ...))
from flowkit.batch import read_dataset  # noqa: E402

__all__ = [
    "__version__",
    "CaptureError",
    "FlowkitError",
    "packets",
    "flows",
    "analysis",
    "batch",
    "read_dataset",
]
