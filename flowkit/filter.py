"""tcpdump-style filter expressions, compiled to vectorized predicates.

    >>> keep = compile_filter("tcp and dst port 80 and not src net 10.0.0.0/8")
    >>> mask = keep(batch)              # numpy bool array, one entry per packet
    >>> keep_flows = compile_flow_filter("udp port 53")
    >>> mask = keep_flows(flow_table)   # one entry per flow

Grammar (a subset of pcap-filter(7), with its precedence: ``not`` binds tightest;
``and`` and ``or`` have EQUAL precedence and associate left to right, so
``tcp or udp and port 53`` means ``(tcp or udp) and port 53``, exactly as tcpdump
reads it; parentheses group):

    expr      := unary (("and" | "&&" | "or" | "||") unary)*
    unary     := ("not" | "!") unary | "(" expr ")" | primitive
    primitive := "tcp" | "udp" | "icmp" | "icmp6" | "sctp" | "ip" | "ip6" | "vlan" [N]
               | ["ip" | "ip6"] "proto" (N | NAME | "\\"NAME)
               | [proto] [dir] ("host" ADDR | "net" CIDR | "net" ADDR "mask" MASK
                                | "port" N | "portrange" N "-" N)
               | VALUE          (repeats the previous primitive's qualifiers: "port 80 or 443")
    proto     := "tcp" | "udp" | "ip" | "ip6"
    dir       := "src" | "dst" | "src or dst" | "src and dst"

Where flowkit and tcpdump differ (both on purpose: flowkit filters what it decoded):
``host``/``net`` match IP packets only (tcpdump also matches ARP addresses); every
primitive sees through VLAN and MPLS tags (tcpdump needs ``vlan``/``mpls`` first);
``tcp``/``udp``/``icmp6``/``proto N`` use the protocol after IPv6 extension headers; packets flowkit
marks malformed or truncated before the ports carry no ports. ``vlan N`` compares the
outer tag and does not shift later primitives, unlike tcpdump's ``vlan``.

The expression is parsed once; evaluating it is a few numpy operations over whole
columns, never a Python step per packet. Addresses compare as two big-endian uint64
halves of the 16-byte (IPv4-mapped) form used by the packet schema; flow tables hold
addresses as text, which is parsed once per distinct address.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowkit.errors import FilterError

__all__ = ["compile_filter", "compile_flow_filter", "parse", "FilterError"]

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132}
PROTO_WORDS = ("tcp", "udp", "icmp", "icmp6", "sctp", "ip", "ip6")
# names ``proto`` accepts (pcap-filter(7)'s list), besides numbers
PROTO_NAMES = {"icmp": 1, "igmp": 2, "igrp": 9, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50,
               "ah": 51, "icmp6": 58, "pim": 103, "vrrp": 112, "sctp": 132, "ospf": 89}
KIND_WORDS = ("host", "net", "port", "portrange")
DIR_WORDS = ("src", "dst")
STATUS_FRAGMENT = 5  # decode.schema.Status.FRAGMENT: ports only in a first fragment (offset 0)

_TOKEN = re.compile(r"\s*(?:(\(|\)|&&|\|\||!)|([^\s()!&|]+))")


# ----------------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Token:
    text: str
    pos: int


@dataclass(frozen=True)
class Not:
    arg: object


@dataclass(frozen=True)
class And:
    left: object
    right: object


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class Proto:
    name: str  # tcp, udp, icmp, icmp6, ip, ip6


@dataclass(frozen=True)
class IpProto:
    number: int  # IP protocol (after IPv6 extension headers)
    version: int | None = None  # "ip proto" 4, "ip6 proto" 6, "proto" either


@dataclass(frozen=True)
class Vlan:
    vid: int | None  # None: any VLAN tag


@dataclass(frozen=True)
class Net:
    """Address match; a host is a /32 (IPv4) or /128 (IPv6) network."""

    dir: str  # "src", "dst", "or" (either side), "and" (both sides)
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Port:
    dir: str
    lo: int
    hi: int
    proto: str | None = None  # "tcp"/"udp" when qualified ("tcp port 80")


# ----------------------------------------------------------------------------- parser
def _error(expr: str, pos: int, message: str) -> FilterError:
    return FilterError(f"bad filter: {message} at position {pos}\n  {expr}\n  {' ' * pos}^")


def tokenize(expr: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            # a lone '&' or '|' (the regex accepts only their doubled forms)
            bad = pos + len(expr[pos:]) - len(expr[pos:].lstrip())
            if bad >= len(expr):
                break
            raise _error(expr, bad, f"unexpected character {expr[bad]!r}")
        if m.end() == pos or not (m.group(1) or m.group(2)):
            break
        text = m.group(1) or m.group(2)
        tokens.append(Token(text, m.start(1) if m.group(1) else m.start(2)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0
        self.last: tuple | None = None  # qualifiers of the previous primitive

    # helpers
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else None

    def word(self, k: int = 0) -> str | None:
        t = self.peek(k)
        return t.text.lower() if t is not None else None

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise self.error_at_end("expression ends too early")
        self.i += 1
        return t

    def error_at_end(self, message: str) -> FilterError:
        return _error(self.expr, len(self.expr), message)

    def error(self, token: Token, message: str) -> FilterError:
        return _error(self.expr, token.pos, message)

    # grammar
    def parse(self):
        if not self.tokens:
            raise self.error_at_end("empty expression")
        node = self.parse_expr()
        t = self.peek()
        if t is not None:
            what = "unmatched ')'" if t.text == ")" else f"unexpected {t.text!r}"
            raise self.error(t, what)
        return node

    def parse_expr(self):
        # pcap-filter(7): "alternation and concatenation have equal precedence and
        # associate left to right" -- not the and-over-or of most languages
        node = self.parse_unary()
        while self.word() in ("and", "&&", "or", "||"):
            op = self.take().text.lower()
            right = self.parse_unary()
            node = And(node, right) if op in ("and", "&&") else Or(node, right)
        return node

    def parse_unary(self):
        t = self.peek()
        if t is None:
            raise self.error_at_end("expression ends too early")
        w = t.text.lower()
        if w in ("not", "!"):
            self.take()
            return Not(self.parse_unary())
        if w == "(":
            self.take()
            node = self.parse_expr()
            close = self.peek()
            if close is None:
                raise self.error(t, "'(' is never closed")
            if close.text != ")":
                raise self.error(close, f"expected ')' but found {close.text!r}")
            self.take()
            return node
        return self.parse_primitive()

    def parse_primitive(self):
        t = self.peek()
        w = t.text.lower()
        if w in (")", "and", "&&", "or", "||"):
            raise self.error(t, f"expected a primitive before {t.text!r}")
        if w == "vlan":
            self.take()
            nxt = self.peek()
            if nxt is not None and nxt.text.isdigit():
                self.take()
                vid = int(nxt.text)
                if vid > 4095:
                    raise self.error(nxt, f"VLAN id {vid} is not in 0-4095")
                return Vlan(vid)
            return Vlan(None)

        if w == "proto" or (w in ("ip", "ip6") and self.word(1) == "proto"):
            version = {"ip": 4, "ip6": 6}.get(w)
            if version:
                self.take()
            self.take()
            return IpProto(self.parse_proto_number(), version)

        proto = None
        if w in PROTO_WORDS:
            nxt = self.word(1)
            if nxt in DIR_WORDS or nxt in KIND_WORDS:
                proto = w
                self.take()
            else:
                self.take()
                return Proto(w)

        direction = self.parse_dir()
        k = self.peek()
        if k is None:
            raise self.error_at_end("expected host, net, port or portrange")
        kind = k.text.lower()
        if kind in KIND_WORDS:
            self.take()
            value = self.take() if self.peek() is not None else None
            if value is None:
                raise self.error_at_end(f"'{kind}' needs a value")
        elif proto is None and direction is None and self.last is not None and _looks_like_value(kind):
            # "port 80 or 443": a bare value repeats the previous primitive's qualifiers
            proto, direction, kind = self.last
            value = self.take()
        else:
            raise self.error(k, f"unknown primitive {k.text!r}" if direction is None and proto is None
                             else f"expected host, net, port or portrange, found {k.text!r}")
        self.last = (proto, direction, kind)
        return self.build(proto, direction or "or", kind, value)

    def parse_dir(self) -> str | None:
        w = self.word()
        if w not in DIR_WORDS:
            return None
        self.take()
        # "src or dst" / "src and dst" as a qualifier, only when a kind word follows
        if self.word() in ("or", "and") and self.word(1) in DIR_WORDS and self.word(2) in KIND_WORDS:
            joiner = self.take().text.lower()
            self.take()
            return joiner
        return w

    def build(self, proto, direction, kind, value: Token):
        if kind in ("host", "net"):
            if proto in ("tcp", "udp"):
                raise self.error(value, f"'{proto} {kind}' is not a valid qualifier pair")
            network = self.parse_network(kind, value)
            node = Net(direction, network)
            if proto in ("ip", "ip6"):
                want = 4 if proto == "ip" else 6
                if network.version != want:
                    raise self.error(value, f"{value.text!r} is not an IPv{want} address")
            return node
        if proto in ("ip", "ip6"):
            raise self.error(value, f"'{proto} {kind}' is not a valid qualifier pair")
        if kind == "port":
            port = self.parse_port(value, value.text, value.pos)
            return Port(direction, port, port, proto)
        lo_text, sep, hi_text = value.text.partition("-")
        if not sep:
            raise self.error(value, f"portrange needs A-B, found {value.text!r}")
        lo = self.parse_port(value, lo_text, value.pos)
        hi = self.parse_port(value, hi_text, value.pos + len(lo_text) + 1)
        if lo > hi:
            lo, hi = hi, lo  # tcpdump accepts a reversed range
        return Port(direction, lo, hi, proto)

    def parse_proto_number(self) -> int:
        t = self.peek()
        if t is None:
            raise self.error_at_end("'proto' needs a protocol number or name")
        self.take()
        text = t.text.lower().lstrip("\\")
        if text.isdigit() and int(text) <= 255:
            return int(text)
        if text in PROTO_NAMES:
            return PROTO_NAMES[text]
        raise self.error(t, f"{t.text!r} is not an IP protocol number (0-255) or name")

    def parse_port(self, token: Token, text: str, pos: int) -> int:
        if not text.isdigit() or int(text) > 65535:
            raise _error(self.expr, pos, f"{text!r} is not a port number (0-65535)")
        return int(text)

    def parse_network(self, kind: str, value: Token):
        text = value.text
        if kind == "host":
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                raise self.error(value, f"{text!r} is not an IPv4 or IPv6 address (names are not resolved)") from None
            return ipaddress.ip_network(addr)
        if self.word() == "mask":
            mask_tok = self.take()
            mask = self.peek()
            if mask is None:
                raise self.error(mask_tok, "'mask' needs a netmask")
            self.take()
            try:
                return ipaddress.IPv4Network(f"{text}/{mask.text}", strict=True)
            except ValueError as exc:
                raise self.error(mask, f"bad net/mask {text} mask {mask.text}: {exc}") from None
        try:
            if "/" not in text and ":" not in text and text.count(".") < 3:
                # tcpdump's short forms: "net 10" = 10.0.0.0/8, "net 192.168" = /16
                parts = text.split(".")
                text = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
            return ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise self.error(value, f"{value.text!r} is not a network: {exc}") from None


def _looks_like_value(word: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f:.\-/]+", word)) and any(c.isdigit() for c in word)


def parse(expr: str):
    """Parse ``expr`` into the syntax tree (``Or``/``And``/``Not``/``Proto``/``IpProto``/``Net``/``Port``/``Vlan``)."""
    if not isinstance(expr, str):
        raise TypeError(f"filter expression must be a string, not {type(expr).__name__}")
    return _Parser(expr).parse()


# ----------------------------------------------------------------------------- evaluation
def _column(data, name: str) -> np.ndarray | pa.Array:
    if isinstance(data, (pa.RecordBatch, pa.Table)):
        col = data.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)
        return col
    return data[name]  # pandas DataFrame or a mapping of numpy arrays


def _numpy(data, name: str) -> np.ndarray:
    col = _column(data, name)
    if isinstance(col, pa.Array):
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col)


def _halves_of_binary(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """16-byte fixed-size binary column as two big-endian uint64 columns (hi, lo)."""
    n = len(col)
    buf = col.buffers()[1]
    raw = np.frombuffer(buf, dtype=">u8", count=(col.offset + n) * 2)[col.offset * 2 :]
    raw = raw.reshape(n, 2)
    return raw[:, 0].astype(np.uint64), raw[:, 1].astype(np.uint64)


def _network_halves(network) -> tuple[int, int, int, int]:
    """(value_hi, value_lo, mask_hi, mask_lo) of a network in the 16-byte mapped form."""
    if network.version == 4:
        value = (0xFFFF << 32) | int(network.network_address)
        mask = ((1 << 128) - 1) ^ ((1 << (32 - network.prefixlen)) - 1)
    else:
        value = int(network.network_address)
        mask = ((1 << 128) - 1) ^ ((1 << (128 - network.prefixlen)) - 1)
    m64 = (1 << 64) - 1
    return value >> 64, value & m64, mask >> 64, mask & m64


class _Columns:
    """Columns of a packet batch or flow table as numpy arrays, each converted once.

    Subclasses say how their schema answers the predicates' questions; ``ip``/``ip6``
    read the same ``ip_version`` column in both schemas."""

    def __init__(self, data):
        self.data = data
        self.n = data.num_rows if hasattr(data, "num_rows") else len(data)
        self._cache: dict = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = _numpy(self.data, name)
        return self._cache[name]

    def ip_version(self) -> np.ndarray:
        return self.get("ip_version")

    def proto(self, name: str) -> np.ndarray:
        if name == "ip":
            return self.ip_version() == 4
        if name == "ip6":
            return self.ip_version() == 6
        return self.transport(name)

    def cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


class _PacketColumns(_Columns):
    """Packet batches (schema in decode/schema.py): protocol numbers, 16-byte addresses."""

    def transport(self, name: str) -> np.ndarray:
        version = 6 if name == "icmp6" else 4 if name == "icmp" else 0
        mask = self.get("ip_proto") == PROTO_NUMBERS[name]
        if version:
            mask &= self.ip_version() == version
        else:
            mask &= self.ip_version() != 0
        return mask

    def ip_proto(self) -> np.ndarray:
        return self.get("ip_proto")

    def has_ports(self, proto: str | None) -> np.ndarray:
        ip_proto = self.get("ip_proto")
        ok = (self.get("status") != STATUS_FRAGMENT) | (self.get("frag_offset") == 0)
        if proto is None:
            return ok & ((ip_proto == 6) | (ip_proto == 17)) & (self.ip_version() != 0)
        return ok & (ip_proto == PROTO_NUMBERS[proto]) & (self.ip_version() != 0)

    def addr_in(self, side: str, network) -> np.ndarray:
        hi, lo = self.cached(("halves", side), lambda: _halves_of_binary(_column(self.data, f"{side}_ip")))
        vhi, vlo, mhi, mlo = (np.uint64(x) for x in _network_halves(network))
        want_version = 4 if network.version == 4 else 6
        return ((hi & mhi) == vhi) & ((lo & mlo) == vlo) & (self.ip_version() == want_version)


class _FlowColumns(_Columns):
    """Flow tables (schema in flows/schema.py, Arrow or pandas): protocol names, text addresses."""

    def transport(self, name: str) -> np.ndarray:
        return self.ip_proto() == PROTO_NUMBERS[name]

    def ip_proto(self) -> np.ndarray:
        """Protocol numbers: the ``ip_proto`` column, or from ``proto`` names in older tables.

        ``proto`` says "icmp" for ICMPv6 too (as Zeek writes it): the IP version tells them apart.
        """
        def make():
            from flowkit.flows.schema import proto_numbers

            named = proto_numbers(self.get("proto"), self.ip_version())
            if "ip_proto" not in _names(self.data):
                return named
            given = _as_float(self.get("ip_proto"))  # null where a table (a conn.log) lacks the number
            return np.where(np.isnan(given), named, np.nan_to_num(given)).astype(np.int64)

        return self.cached("ip_proto", make)

    def has_ports(self, proto: str | None) -> np.ndarray:
        p = self.get("proto").astype(object)
        if proto is None:
            return np.asarray((p == "tcp") | (p == "udp"), dtype=bool)
        return np.asarray(p == proto, dtype=bool)

    def addr_in(self, side: str, network) -> np.ndarray:
        uniques, codes = self.cached(("codes", side), lambda: self._distinct_addresses(side))
        hit = np.array(
            [a is not None and a.version == network.version and a in network for a in uniques] + [False],
            dtype=bool,
        )
        return hit[codes]  # code -1 (null) picks the trailing False

    def _distinct_addresses(self, side: str):
        # parse each distinct address once, then broadcast through the dictionary codes
        col = _column(self.data, f"{side}_ip")
        if not isinstance(col, pa.Array):
            col = pa.array(np.asarray(col, dtype=object), type=pa.string())
        enc = col.dictionary_encode()
        uniques = [ipaddress.ip_address(a) if a else None for a in enc.dictionary.to_pylist()]
        codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return uniques, codes


def _as_float(values) -> np.ndarray:
    """Numbers as float64 with NaN for nulls (numpy, object arrays with None, Arrow alike)."""
    return pa.array(values, from_pandas=True).cast(pa.float64()).to_numpy(zero_copy_only=False)


def _names(data) -> list[str]:
    if isinstance(data, (pa.RecordBatch, pa.Table)):
        return data.schema.names
    return list(data.keys()) if isinstance(data, dict) else list(data.columns)


def _evaluate(node, cols) -> np.ndarray:
    if isinstance(node, Or):
        return _evaluate(node.left, cols) | _evaluate(node.right, cols)
    if isinstance(node, And):
        return _evaluate(node.left, cols) & _evaluate(node.right, cols)
    if isinstance(node, Not):
        return ~_evaluate(node.arg, cols)
    if isinstance(node, Proto):
        return cols.proto(node.name)
    if isinstance(node, IpProto):
        mask = cols.ip_proto() == node.number
        version = cols.ip_version()
        return mask & ((version != 0) if node.version is None else (version == node.version))
    if isinstance(node, Vlan):
        vlan = cols.get("vlan")
        return vlan != 0 if node.vid is None else vlan == node.vid
    if isinstance(node, Net):
        return _combine(node.dir, lambda side: cols.addr_in(side, node.network))
    if isinstance(node, Port):
        ok = cols.has_ports(node.proto)

        def in_range(side):
            port = cols.get(f"{side}_port")
            return (port >= node.lo) & (port <= node.hi)

        return ok & _combine(node.dir, in_range)
    raise TypeError(f"unknown filter node {node!r}")


def _combine(direction: str, side_mask: Callable[[str], np.ndarray]) -> np.ndarray:
    if direction == "src":
        return side_mask("src")
    if direction == "dst":
        return side_mask("dst")
    if direction == "and":
        return side_mask("src") & side_mask("dst")
    return side_mask("src") | side_mask("dst")


def _compile(expr: str, columns_type) -> Callable:
    tree = parse(expr)

    def predicate(data) -> np.ndarray:
        cols = columns_type(data)
        if cols.n == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(_evaluate(tree, cols), dtype=bool)

    predicate.expression = expr
    predicate.tree = tree
    return predicate


def compile_filter(expr: str) -> Callable[[pa.RecordBatch | pa.Table], np.ndarray]:
    """Predicate over packet batches (``PACKET_SCHEMA``): a numpy bool array per batch.

    Raises ``FilterError`` (message shows the expression and a caret at the bad token).
    """
    return _compile(expr, _PacketColumns)


def compile_flow_filter(expr: str) -> Callable:
    """Predicate over flow tables (``FLOW_SCHEMA``, Arrow or pandas): a numpy bool array per flow.

    ``src`` means the originator and ``dst`` the responder.
    """
    return _compile(expr, _FlowColumns)
