"""flowkit: packet captures into a columnar five-tuple flow table, and the analyses on it.

    >>> import flowkit
    >>> table = flowkit.flows("capture.pcap")      # FlowTable backed by Arrow
    >>> df = table.to_pandas()
    >>> flowkit.analysis.handshakes(table)

Submodules load on first use, so ``import flowkit`` (and ``flowkit --version``) stays cheap:
numpy, pyarrow, pandas and Dask are imported only by the parts that need them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from flowkit.errors import CaptureError, FlowkitError  # noqa: E402  (light: no dependencies)

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "packets": ("flowkit.decode.api", "packets"),
    "PacketTable": ("flowkit.decode.api", "PacketTable"),
    "flows": ("flowkit.flows", None),  # callable package: flowkit.flows(source, ...)
    "FlowTable": ("flowkit.flows.table", "FlowTable"),
    "analysis": ("flowkit.analysis", None),
    "batch": ("flowkit.batch", None),  # callable package: flowkit.batch(inputs, out, ...)
    "read_dataset": ("flowkit.batch", "read_dataset"),
    "report": ("flowkit.report", None),
}

__all__ = ["__version__", "CaptureError", "FlowkitError", *_LAZY]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'flowkit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
