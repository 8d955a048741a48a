"""Agreement of the fast engine with Wireshark on the packets inside tunnels.

    python benchmarks/tunnel_agreement.py [CAPTURE ...] [--limit N]

For every record where flowkit found a packet inside a tunnel, its innermost row's
addresses, IP protocol and ports are compared with what tshark dissects as the innermost IP
layer of the same frame (the last ip/ipv6 layer in frame.protocols and the tcp/udp ports
after it). Default captures: the tunnel traces of the corpus (../shared/corpus) and the first
--limit records of benchmarks/data/tunnels.pcap (make_tunnels.py) if present.
"""
from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus"
FIELDS = ["frame.number", "frame.protocols", "ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]


def default_captures() -> list[Path]:
    zeek = CORPUS / "zeek" / "traces"
    out = sorted((zeek / "tunnels").rglob("*.pcap*")) + sorted(zeek.glob("erspan*.pcap"))
    out += sorted((CORPUS / "nfstream").glob("*tunnel*.pcap")) + [CORPUS / "nfstream" / "ipv6_in_gtp.pcap"]
    return [p for p in out if p.is_file()]


def shark_innermost(path: Path) -> dict[int, tuple]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        layers = v["frame.protocols"].split(":")
        ips = [i for i, name in enumerate(layers) if name in ("ip", "ipv6")]
        if not ips:
            continue
        last = layers[ips[-1]]
        src = v["ip.src" if last == "ip" else "ipv6.src"].split(",")[-1]
        dst = v["ip.dst" if last == "ip" else "ipv6.dst"].split(",")[-1]
        after = layers[ips[-1] + 1 :]
        proto, ports = None, (0, 0)
        for name, number in (("tcp", 6), ("udp", 17)):
            if name in after:
                proto = number
                ports = (int(v[f"{name}.srcport"].split(",")[-1]), int(v[f"{name}.dstport"].split(",")[-1]))
                break
        rows[int(v["frame.number"]) - 1] = (str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), proto,
                                            *ports, ":".join(layers))
    return rows


def compare(path: Path, limit: int | None) -> tuple[int, int, Counter]:
    import flowkit
    from flowkit.decode.addresses import to_strings

    source = path
    if limit:
        import dpkt

        tmp = Path(tempfile.mkdtemp()) / path.name
        with open(path, "rb") as f, open(tmp, "wb") as g:
            reader = dpkt.pcap.Reader(f)
            writer = dpkt.pcap.Writer(g, linktype=reader.datalink(), snaplen=65535 + 200)
            for k, (ts, buf) in enumerate(reader):
                if k >= limit:
                    break
                writer.writepkt(buf, ts=ts)
        source = tmp
    t = flowkit.packets(source).to_arrow()
    depth = t.column("tunnel_depth").to_numpy()
    index = t.column("index").to_numpy()
    src = to_strings(t.column("src_ip")).to_pylist()
    dst = to_strings(t.column("dst_ip")).to_pylist()
    proto = t.column("ip_proto").to_numpy()
    sport, dport = t.column("src_port").to_numpy(), t.column("dst_port").to_numpy()
    inner = {}
    for i in range(t.num_rows):  # the last row of a record is its innermost
        if depth[i] > 0:
            inner[int(index[i])] = (src[i], dst[i], int(proto[i]), int(sport[i]), int(dport[i]))
    shark = shark_innermost(source)
    same, why = 0, Counter()
    for rec, ours in inner.items():
        theirs = shark.get(rec)
        if theirs is None:
            why["no IP layer in tshark"] += 1
        elif ours[:2] != theirs[:2]:
            why[f"other innermost addresses ({theirs[5]})"] += 1
        elif ours[2] in (6, 17) and (theirs[2], *theirs[3:5]) != ours[2:5]:
            why[f"other transport ({theirs[5]})"] += 1
        else:
            same += 1
    return len(inner), same, why


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--limit", type=int, default=20000)
    args = ap.parse_args(argv)
    jobs = [(Path(p), None) for p in args.captures] or [(p, None) for p in default_captures()]
    generated = HERE / "data" / "tunnels.pcap"
    if not args.captures and generated.is_file():
        jobs.append((generated, args.limit))
    total = agree = 0
    for path, limit in jobs:
        n, same, why = compare(path, limit)
        total, agree = total + n, agree + same
        label = path.name + (f" (first {limit})" if limit else "")
        print(f"{label:45s} inner records {n:6d} agree {same:6d} {dict(why) if why else ''}")
    print(f"all: {agree} of {total} records with a tunnel agree on the innermost five-tuple "
          f"({100 * agree / max(total, 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
