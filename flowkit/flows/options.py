"""Options of ``flowkit.flows``, ``accumulate`` and ``flowkit.batch``, in three groups.

``ReadOptions``    how packets are read: engine, packet filter, strictness, chunk size
``FlowSemantics``  what a connection is: the timeouts, VLAN tags in the key, the local networks
                   (they change the flows)
``Resources``      how much memory and where to spill (never change the flows)

``FlowOptions`` holds all three, field by field (``FlowOptions(tcp_timeout=2.0)``), and
gives each group as ``.read``, ``.semantics`` and ``.resources``. What a batch manifest
hashes is ``result_record()``: the read options that change which packets count, and the
semantics; resources and chunk size are operational.

Names are the CLI's: ``packet_filter`` (``--packet-filter``), ``tcp_timeout``
(``--tcp-timeout``), ``udp_timeout``, ``active_timeout``, ``memory`` (``--memory``).
The older API spelling ``filter=`` is accepted by ``flows()``/``batch()`` with a
DeprecationWarning.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields

NS = 1_000_000_000
DEFAULT_MEMORY = 96 << 20  # state budget: a flowkit process stays under 300 MB (docs/performance.md)
DEPRECATED = {"filter": "packet_filter"}  # old keyword -> current one

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(value) -> int | None:
    """Bytes from an int or a size such as ``"300M"`` (K, M, G: binary multiples); None stays None."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    try:
        number = float(text[: len(text) - len(unit)])
    except ValueError:
        raise ValueError(f"not a size: {value!r} (bytes, or a number with K, M or G)") from None
    if number < 0:
        raise ValueError(f"not a size: {value!r} (negative)")
    return int(number * _SIZE_UNITS[unit])


@dataclass(frozen=True)
class ReadOptions:
    engine: str = "fast"
    packet_filter: object = None  # tcpdump-style expression or batch -> mask callable
    strict: bool = False
    chunk_bytes: int | None = None  # operational: read buffer size
    decap: bool = True  # packets inside tunnels make flows too (as Zeek's inner connections)
    verify_checksums: bool = False  # as Zeek without -C (default: as zeek -C, not verified)


@dataclass(frozen=True)
class FlowSemantics:
    tcp_timeout: float = 300.0  # seconds of inactivity (Zeek's tcp_inactivity_timeout)
    udp_timeout: float = 60.0
    active_timeout: float | None = None
    vlan_key: bool = False  # VLAN tags in the connection key (Zeek's default: no)
    local_nets: tuple[str, ...] | None = None  # local_orig/local_resp networks (None: Zeek's default)

    def __post_init__(self):
        from flowkit.flows.local import check_nets

        object.__setattr__(self, "local_nets", check_nets(self.local_nets))  # frozen: normalised once


@dataclass(frozen=True)
class Resources:
    memory: int | None = DEFAULT_MEMORY  # bytes for the flow state; None: unlimited
    spill_rows: int | None = None  # finished flows held before a sorted run (default: from memory)
    spill_dir: str | None = None  # parent of the temporary spill directories


@dataclass(frozen=True)
class FlowOptions(ReadOptions, FlowSemantics, Resources):
    """Every option of a flow run (seconds for timeouts, bytes for memory)."""

    @classmethod
    def from_kwargs(cls, **kwargs) -> "FlowOptions":
        """Options from keywords, taking deprecated spellings (with a warning) and sizes as text."""
        for old, new in DEPRECATED.items():
            if old in kwargs:
                warnings.warn(f"{old}= is deprecated; use {new}=", DeprecationWarning, stacklevel=4)
                value = kwargs.pop(old)
                if kwargs.get(new) is None:
                    kwargs[new] = value
        if "memory" in kwargs:
            kwargs["memory"] = parse_size(kwargs["memory"])
        return cls(**kwargs)

    def _group(self, kind) -> object:
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})

    @property
    def read(self) -> ReadOptions:
        return self._group(ReadOptions)

    @property
    def semantics(self) -> FlowSemantics:
        return self._group(FlowSemantics)

    @property
    def resources(self) -> Resources:
        return self._group(Resources)

    def result_record(self) -> dict:
        """The options that can change the flows (what a batch manifest hashes)."""
        read = asdict(self.read)
        del read["chunk_bytes"]
        return {**read, **asdict(self.semantics)}

    @property
    def tcp_ns(self) -> int:
        return int(round(self.tcp_timeout * NS))

    @property
    def udp_ns(self) -> int:
        return int(round(self.udp_timeout * NS))

    @property
    def local(self):
        """The LocalNets of ``local_nets`` (flows/local.py)."""
        from flowkit.flows.local import local_nets_of

        return local_nets_of(self.local_nets)

    @property
    def active_ns(self) -> int:
        return int(round(self.active_timeout * NS)) if self.active_timeout else 0
