"""The ``pyshark`` engine: Wireshark's dissectors fill the packet schema.

flowkit frames the capture itself (same ``RecordChunk``s as the other engines, so the
packet index, timestamps and the ledger line up exactly); each chunk is written to a
temporary pcapng (one interface per link type, nanosecond resolution) and tshark
dissects it. Two ways to talk to tshark:

* ``via="fields"`` (the default): ``tshark -T fields`` over the whole chunk, one text
  line per packet. tshark is located with pyshark, like pyshark does it.
* ``via="pyshark"``: ``pyshark.FileCapture`` and its per-packet layer objects. Same
  values, but about fifty times slower, so it is kept for small captures and
  for checking that both paths agree.

Wireshark reassembles and decapsulates more than flowkit does; the preferences below
turn reassembly off so each frame is dissected on its own. Columns flowkit fills from
header arithmetic that Wireshark does not expose the same way (``status`` beyond
OK/NON_IP/FRAGMENT) are approximations: docs/engines.md lists what compares.
"""
from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from decimal import Decimal

import pyarrow as pa

from flowkit.capture.records import RecordChunk
from flowkit.decode.dpkt_engine import _FROM_ROW, _mapped, batch_from_columns

# One row per packet as tshark dissects it: the tunnel columns stay zero (docs/engines.md).
_SHARK_ROW = [name for name in _FROM_ROW if not name.startswith("tunnel_")]
from flowkit.decode.schema import (
    FRAG_DF,
    FRAG_IS_FRAGMENT,
    FRAG_MF,
    OPT_MSS,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TS,
    OPT_WSCALE,
    Status,
)
from flowkit.errors import EngineUnavailable

# TCP option kinds (tcp.option_kind) -> tcp_opts bits
OPTION_BITS = {2: OPT_MSS, 3: OPT_WSCALE, 4: OPT_SACK_PERM, 8: OPT_TS, 5: OPT_SACK}

# Wireshark preferences: dissect each frame alone, as flowkit does.
PREFS = (
    "ip.defragment:FALSE",
    "ipv6.defragment:FALSE",
    "tcp.desegment_tcp_streams:FALSE",
    "tcp.analyze_sequence_numbers:FALSE",
    "tcp.relative_sequence_numbers:FALSE",
    "tcp.check_checksum:FALSE",
    "udp.check_checksum:FALSE",
)

FIELDS = (
    "frame.number", "frame.time_epoch", "frame.cap_len", "frame.len", "frame.protocols",
    "ieee8021ad.id", "vlan.id", "ip.version", "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.ttl",
    "ip.id", "ip.flags.mf", "ip.flags.df", "ip.frag_offset", "ipv6.src", "ipv6.dst", "ipv6.nxt",
    "ipv6.plen", "ipv6.hlim", "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw",
    "tcp.window_size_value", "tcp.hdr_len", "tcp.len", "tcp.options.mss_val",
    "tcp.options.wscale.shift", "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr",
    "udp.srcport", "udp.dstport", "udp.length", "icmp.type", "icmp.code", "icmpv6.type",
    "icmpv6.code", "tcp.option_kind",
)  # fmt: skip


def tshark_path() -> str:
    """tshark's path as pyshark finds it; EngineUnavailable (one line) when it is missing."""
    try:
        from pyshark.tshark.tshark import get_process_path
    except ImportError as exc:  # pragma: no cover - pyshark is a dependency
        raise EngineUnavailable(f"the pyshark engine needs pyshark: {exc}") from None
    try:
        path = get_process_path()
    except Exception:  # pyshark raises TSharkNotFoundException
        path = None
    if not path or not os.path.exists(path):
        raise EngineUnavailable(
            "the pyshark engine needs tshark (Wireshark's command-line tool), which is not installed"
        )
    return path


def check_available() -> None:
    tshark_path()


def write_pcapng(chunk: RecordChunk, path: str) -> None:
    """The chunk's records as a little-endian pcapng, one interface per link type, ns timestamps."""
    linktypes = sorted(set(chunk.linktype.tolist()))
    iface_of = {lt: i for i, lt in enumerate(linktypes)}
    with open(path, "wb") as f:
        f.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
        for lt in linktypes:
            opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol = 10^-9
            blen = 20 + len(opts)
            f.write(struct.pack("<IIHHI", 1, blen, lt, 0, 0) + opts + struct.pack("<I", blen))
        data = chunk.data
        for s, c, w, ts, lt in zip(
            chunk.start.tolist(), chunk.caplen.tolist(), chunk.wirelen.tolist(),
            chunk.ts.tolist(), chunk.linktype.tolist(),
        ):  # fmt: skip
            body = data[s : s + c].tobytes()
            pad = (-c) % 4
            blen = 32 + c + pad
            ts &= (1 << 64) - 1
            f.write(
                struct.pack("<IIIIIII", 6, blen, iface_of[lt], ts >> 32, ts & 0xFFFFFFFF, c, w)
                + body
                + b"\x00" * pad
                + struct.pack("<I", blen)
            )


def _first(value: str | None) -> str:
    return value.split(",")[0] if value else ""


def _int(value: str | None, base: int = 10) -> int:
    v = _first(value)
    if not v:
        return 0
    return int(v, 16) if v.startswith("0x") else int(v, base)


def _addr(value: str | None) -> bytes:
    import ipaddress

    v = _first(value)
    if not v:
        return bytes(16)
    a = ipaddress.ip_address(v)
    return _mapped(a.packed) if a.version == 4 else a.packed


def _ns(epoch: str) -> int:
    return int(Decimal(epoch) * 1_000_000_000)


def _row(f: dict[str, str]) -> dict[str, int | bytes]:
    """One packet's schema columns from tshark field values (names as in FIELDS)."""
    r: dict[str, int | bytes] = dict.fromkeys(_SHARK_ROW, 0)
    r["src_ip"] = r["dst_ip"] = bytes(16)
    # the record columns as tshark read them back (checks the temporary pcapng round trip too)
    r["ts"], r["caplen"], r["wirelen"] = _ns(f["frame.time_epoch"]), _int(f["frame.cap_len"]), _int(f["frame.len"])
    # Wireshark names an 802.1ad (0x88a8) tag ieee8021ad: it is the outer (service) tag
    vlans = [_int(v) for key in ("ieee8021ad.id", "vlan.id") for v in f.get(key, "").split(",") if v]
    r["vlan"], r["inner_vlan"] = (vlans + [0, 0])[:2]
    # the outer IP header is flowkit's; Wireshark also dissects tunnelled ones (4in6, 6in4, ...)
    layers = f.get("frame.protocols", "").split(":")
    outer = next((name for name in layers if name in ("ip", "ipv6")), "")
    if outer == "ip" and f.get("ip.src"):
        r["ip_version"], hdr_proto = 4, _int(f["ip.proto"])
        r["src_ip"], r["dst_ip"] = _addr(f["ip.src"]), _addr(f["ip.dst"])
        r["ip_proto"], r["ip_len"], r["ttl"], r["ip_id"] = (
            hdr_proto, _int(f["ip.len"]), _int(f["ip.ttl"]), _int(f["ip.id"]),
        )  # fmt: skip
        r["frag_offset"] = _int(f["ip.frag_offset"])  # the 13-bit field (8-byte units) since Wireshark 3
        mf, df = _int(f["ip.flags.mf"]), _int(f["ip.flags.df"])
        r["frag"] = (FRAG_MF if mf else 0) | (FRAG_DF if df else 0)
        if mf or r["frag_offset"]:
            r["frag"] |= FRAG_IS_FRAGMENT
    elif outer == "ipv6" and f.get("ipv6.src"):
        r["ip_version"] = 6
        r["src_ip"], r["dst_ip"] = _addr(f["ipv6.src"]), _addr(f["ipv6.dst"])
        r["ip_len"], r["ttl"] = _int(f["ipv6.plen"]) + 40, _int(f["ipv6.hlim"])
        r["ip_proto"] = _int(f["ipv6.nxt"])
        if f.get("ipv6.fraghdr.ident"):
            r["frag_offset"] = _int(f["ipv6.fraghdr.offset"])
            r["ip_id"] = _int(f["ipv6.fraghdr.ident"])
            r["frag"] = FRAG_IS_FRAGMENT | (FRAG_MF if _int(f["ipv6.fraghdr.more"]) else 0)
    else:
        r["status"] = Status.NON_IP
        return r
    # The transport actually dissected (after IPv6 extension headers); first occurrence only,
    # since ICMP errors and tunnels carry further headers Wireshark also dissects.
    if r["frag_offset"]:
        r["status"] = Status.FRAGMENT
        return r
    if f.get("tcp.srcport"):
        r["ip_proto"] = 6
        r["src_port"], r["dst_port"] = _int(f["tcp.srcport"]), _int(f["tcp.dstport"])
        r["tcp_flags"] = _int(f["tcp.flags"]) & 0x1FF
        r["seq"], r["ack"] = _int(f["tcp.seq_raw"]), _int(f["tcp.ack_raw"])
        r["window"], r["tcp_hdr_len"] = _int(f["tcp.window_size_value"]), _int(f["tcp.hdr_len"])
        r["payload_len"] = _int(f["tcp.len"])
        r["mss"], r["wscale"] = _int(f["tcp.options.mss_val"]), _int(f["tcp.options.wscale.shift"])
        r["tsval"] = _int(f["tcp.options.timestamp.tsval"])
        r["tsecr"] = _int(f["tcp.options.timestamp.tsecr"])
        kinds = {int(k) for k in f.get("tcp.option_kind", "").split(",") if k}
        r["tcp_opts"] = sum(bit for kind, bit in OPTION_BITS.items() if kind in kinds)
    elif f.get("udp.srcport"):
        r["ip_proto"] = 17
        r["src_port"], r["dst_port"] = _int(f["udp.srcport"]), _int(f["udp.dstport"])
        r["udp_len"] = _int(f["udp.length"])
        r["payload_len"] = max(r["udp_len"] - 8, 0)
    elif f.get("icmp.type") or f.get("icmpv6.type"):
        r["ip_proto"] = 1 if f.get("icmp.type") else 58
        r["icmp_type"] = _int(f.get("icmp.type") or f.get("icmpv6.type"))
        r["icmp_code"] = _int(f.get("icmp.code") or f.get("icmpv6.code"))
    # Wireshark's malformed/expert flags mix protocol opinions (checksums, payload
    # dissectors) with header damage, so they do not map onto TRUNCATED/MALFORMED.
    r["status"] = Status.OK
    return r


def _run_fields(pcap: str) -> list[dict[str, str]]:
    cmd = [tshark_path(), "-n", "-r", pcap, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"]
    for pref in PREFS:
        cmd += ["-o", pref]
    for name in FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0 and not out.stdout:
        raise EngineUnavailable(f"tshark failed on {pcap}: {out.stderr.decode(errors='replace').strip()}")
    rows = []
    for line in out.stdout.decode("utf-8", errors="replace").splitlines():
        rows.append(dict(zip(FIELDS, line.split("\t"))))
    return rows


def _shown(field) -> list[str]:
    """Every occurrence of a pyshark field as tshark prints it (``show`` text)."""
    return [str(f.show) for f in getattr(field, "all_fields", None) or [field]]


def _run_pyshark(pcap: str) -> list[dict[str, str]]:
    """The same field values through pyshark's packet objects (slow; small captures)."""
    import pyshark

    prefs = {p.split(":")[0]: p.split(":")[1] for p in PREFS}
    cap = pyshark.FileCapture(pcap, override_prefs=prefs, keep_packets=False, tshark_path=tshark_path())
    rows = []
    try:
        for pkt in cap:
            fields: dict[str, str] = {}
            for name in FIELDS:
                layer_name, _, attr = name.partition(".")
                layers = [lay for lay in [pkt.frame_info, *pkt.layers] if lay.layer_name == layer_name]
                values = []
                for lay in layers:
                    field = lay.get_field(attr.replace(".", "_")) if attr else None
                    if field is None and attr:
                        field = lay.get_field(name)
                    if field is not None:
                        values.extend(_shown(field))
                fields[name] = ",".join(values)
            rows.append(fields)
    finally:
        cap.close()
    return rows


def decode_chunk(chunk: RecordChunk, via: str = "fields") -> pa.RecordBatch:
    """Dissect ``chunk`` with tshark; same schema and packet order as the other engines."""
    run = {"fields": _run_fields, "pyshark": _run_pyshark}[via]
    tshark_path()
    with tempfile.TemporaryDirectory(prefix="flowkit-tshark-") as tmp:
        pcap = os.path.join(tmp, "chunk.pcapng")
        write_pcapng(chunk, pcap)
        dissected = run(pcap)
    if len(dissected) != len(chunk):
        raise EngineUnavailable(
            f"{chunk.path}: tshark dissected {len(dissected)} of {len(chunk)} packets"
        )
    rows = [_row(f) for f in dissected]
    columns = {name: [r[name] for r in rows] for name in (*_SHARK_ROW, "ts", "caplen", "wirelen")}
    return batch_from_columns(chunk, columns)
