"""Client (ephemeral) source ports: which range and which allocation scheme each client host uses.

Method, thresholds and references (RFC 6056, RFC 6335) in docs/analyses.md ("Ephemeral ports").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.analysis._frame import _frame, seconds

# Known ranges, smallest first: the classifier takes the first that holds (nearly) all ports.
RANGES = {
    "legacy": (1024, 5000),  # Windows XP / old BSD 1025-5000 (1024-4999 on some)
    "iana": (49152, 65535),  # RFC 6335 dynamic range: Windows Vista+, macOS
    "linux": (32768, 60999),  # net.ipv4.ip_local_port_range default
    "freebsd": (10000, 65535),  # net.inet.ip.portrange.first/last
}
WIDE = (1024, 65535)  # headroom of a client whose ports fit no known range
RANGE_SHARE = 0.98  # "nearly all": tolerate 2% of ports from another allocator (e.g. bind())
SEQUENTIAL_SHARE = 0.5  # share of +1/+2 steps (global) that makes one counter
PER_DST_SHARE = 0.5  # share of small positive steps per destination
MIN_DST_PAIRS = 10  # consecutive same-destination pairs needed to judge per-destination
UNIFORM_ALPHA = 0.001  # KS p-value below this rejects "uniform over the range"
NAT_LAGS = 8  # how many earlier connections may hold the counter a port continues
NAT_STEP = 16  # a continuation is +1..+16 from one of those
NAT_SHARE = 0.5
FIXED_REUSE = 10  # connections per distinct source port (on average) that make the ports fixed, not allocated

_REQUIRED = ("proto", "src_ip", "src_port", "dst_ip", "dst_port", "ts_start", "ts_end")


def _clients(flows, protos) -> tuple[pd.DataFrame, np.ndarray]:
    """Connections whose source port the client chose, in time order per client.

    TCP: flows where the originator's SYN was seen (midstream orientation is a guess).
    UDP (opt-in): every flow, the originator is the first sender.
    """
    df = _frame(flows, _REQUIRED)
    keep = df["proto"].isin(list(protos)).to_numpy().copy()
    if "syn_count" in df.columns:
        syn = df["syn_count"].fillna(0).to_numpy() > 0
        keep &= (df["proto"] != "tcp").to_numpy() | syn
    df = df[keep].reset_index(drop=True)
    # integer codes for hosts and destinations: grouping and sorting on them is what keeps this fast
    client, names = pd.factorize(df["src_ip"].astype(str), sort=True)
    dst_code, _ = pd.factorize(df["dst_ip"].astype(str))
    dst_port = df["dst_port"].astype(np.int64).to_numpy()
    out = pd.DataFrame(
        {
            "client_ip": client.astype(np.int64),
            "ts": df["ts_start"],
            "t": seconds(df["ts_start"]),
            "t_end": seconds(df["ts_end"]),
            "src_port": df["src_port"].astype(np.int64).to_numpy(),
            "dst_ip": df["dst_ip"].astype(str).to_numpy(),
            "dst_port": dst_port,
            "dst": dst_code.astype(np.int64) * 65536 + dst_port,  # one integer per (dst_ip, dst_port)
            "proto": df["proto"].to_numpy(),
        }
    )
    out = out.take(_order(out, "client_ip", "t", "src_port")).reset_index(drop=True)
    # the names travel beside the frame: in DataFrame.attrs pandas would copy them on every operation
    return out, np.asarray(names, dtype=object)


def _order(df: pd.DataFrame, *keys: str) -> np.ndarray:
    """Stable sort order by numeric columns, first key primary (numpy lexsort: pandas' is slower)."""
    return np.lexsort([df[k].to_numpy() for k in reversed(keys)])


def ephemeral_points(flows, protos=("tcp",)) -> pd.DataFrame:
    """(client_ip, ts, src_port, dst, dst_ip, dst_port, proto) per connection, for port-over-time plots."""
    c, names = _clients(flows, protos)
    out = c[["client_ip", "ts", "src_port", "dst_ip", "dst_port", "proto"]].copy()
    out["client_ip"] = names[c["client_ip"].to_numpy()]
    out.insert(3, "dst", out["dst_ip"] + ":" + out["dst_port"].astype(str))
    return out


def _ks_pvalue(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Kolmogorov-Smirnov one-sample p-value (asymptotic, Stephens' small-n correction)."""
    lam = (np.sqrt(n) + 0.12 + 0.11 / np.sqrt(n)) * d
    p = np.zeros_like(lam)
    for k in range(1, 21):  # for lam >= 0.2 the 21st term is below 1e-15
        p += 2 * (-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * lam**2)
    p[lam < 0.2] = 1.0  # the series converges slowly there and the answer is 1 to 1e-12
    return np.clip(p, 0.0, 1.0)


def _range_fits(c: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per client and known range: does it hold RANGE_SHARE of the ports, and the KS p-value over it.

    The "wide" column is the KS p-value over the client's own observed span [min, max].
    """
    client = c["client_ip"].to_numpy()
    port = c["src_port"].to_numpy()
    order = np.lexsort((port, client))
    client, port = client[order], port[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, client[1:] != client[:-1]])
    n = np.diff(np.r_[starts, len(client)])
    n_row = np.repeat(n, n)
    i = np.arange(len(client)) - np.repeat(starts, n)  # rank inside the client, ports ascending
    index = pd.Index(client[starts], name="client_ip")
    bounds = {**RANGES, "wide": (np.repeat(np.minimum.reduceat(port, starts), n),
                                 np.repeat(np.maximum.reduceat(port, starts), n))}  # fmt: skip
    contained, pvals = {}, {}
    for rname, (lo, hi) in bounds.items():
        inside = (port >= lo) & (port <= hi)
        if rname != "wide":
            contained[rname] = pd.Series(np.add.reduceat(inside, starts) / n >= RANGE_SHARE, index=index)
        f = np.clip((port - lo + 0.5) / (hi - lo + 1), 0, 1)  # continuous approximation of a discrete uniform
        d = np.maximum.reduceat(np.maximum((i + 1) / n_row - f, f - i / n_row), starts)
        pvals[rname] = pd.Series(_ks_pvalue(d, n.astype(np.float64)), index=index)
    return pd.DataFrame(contained), pd.DataFrame(pvals)


def _choose_range(contained: pd.DataFrame, pvals: pd.DataFrame, per_dst: pd.Series):
    """Range name and KS p-value per client.

    A random allocator fills its range, so the smallest containing range where uniformity holds wins;
    otherwise the smallest containing range, except that per-destination counters (Linux's scheme)
    prefer the Linux range when it holds the ports. Nothing contains them: "wide", KS over the span.
    """
    names = list(RANGES)
    uniform_ok = contained & (pvals[names] >= UNIFORM_ALPHA)
    rng = pd.Series("wide", index=contained.index, dtype=object)
    for rname in reversed(names):  # smallest last so it wins
        rng[contained[rname]] = rname
    linux_pref = per_dst & contained["linux"]
    rng[linux_pref] = "linux"
    for rname in reversed(names):
        rng[uniform_ok[rname] & ~per_dst] = rname
    p = pd.Series(np.nan, index=contained.index)
    for rname in [*names, "wide"]:
        p[rng == rname] = pvals.loc[rng == rname, rname]
    return rng, p


def _peak_concurrent(c: pd.DataFrame) -> pd.Series:
    """Peak number of simultaneous connections from a client to one destination (dst_ip, dst_port)."""
    key = c.groupby(["client_ip", "dst"], sort=False).ngroup().to_numpy()
    ev = pd.DataFrame(
        {
            "key": np.concatenate([key, key]),
            "client_ip": np.concatenate([c["client_ip"].to_numpy()] * 2),
            "t": np.concatenate([c["t"].to_numpy(), c["t_end"].to_numpy()]),
            # an end at the instant of another start is not overlap: ends sort first
            "delta": np.concatenate([np.ones(len(c), np.int64), -np.ones(len(c), np.int64)]),
        }
    )
    ev = ev.take(_order(ev, "key", "t", "delta"))
    ev["open"] = ev.groupby("key")["delta"].cumsum()
    return ev.groupby("client_ip")["open"].max()


def _reuse(c: pd.DataFrame, window: float) -> pd.Series:
    """Connections reusing the previous connection's port to the same destination within `window` s."""
    s = c.take(_order(c, "client_ip", "dst", "src_port", "t"))
    g = s.groupby(["client_ip", "dst", "src_port"], sort=False)
    gap = s["t"] - g["t_end"].shift(1)
    return (gap <= window).groupby(s["client_ip"]).sum()


def ephemeral(
    flows,
    reuse_window: float = 60.0,
    *,
    min_connections: int = 20,
    small_step: int = 64,
    protos=("tcp",),
) -> pd.DataFrame:
    """One row per client host: ephemeral range, allocation scheme, evidence, reuse and headroom."""
    c, names = _clients(flows, protos)
    cols = [
        "client_ip", "connections", "destinations", "port_min", "port_max", "distinct_ports", "range",
        "allocation", "median_step", "share_small_steps", "share_small_steps_per_dst", "uniformity_p",
        "reuse_count", "peak_concurrent", "headroom", "nat_hint", "nat_reason",
    ]  # fmt: skip
    if c.empty:
        return pd.DataFrame(columns=cols)
    gc = c.groupby("client_ip")
    n = gc.size()
    out = pd.DataFrame(
        {
            "connections": n,
            "destinations": gc["dst"].nunique(),
            "port_min": gc["src_port"].min(),
            "port_max": gc["src_port"].max(),
            "distinct_ports": gc["src_port"].nunique(),
        }
    )
    enough = n >= min_connections
    # A scanner's raw packets (nmap: a handful of ports, each over hundreds of probes) or a client
    # bound to one port: no allocator of the OS chose these ports, so no range or scheme is inferred.
    fixed = enough & (out["distinct_ports"] * FIXED_REUSE <= n)

    # Steps in time order over all destinations: one global counter gives +1 (+2 on Linux-like even ports).
    step = gc["src_port"].diff()
    out["median_step"] = step.groupby(c["client_ip"]).median()
    out["share_small_steps"] = step.between(1, 2).groupby(c["client_ip"]).sum() / step.notna().groupby(
        c["client_ip"]
    ).sum().replace(0, np.nan)

    # Steps per destination: RFC 6056 alg 3/4 keeps one counter per (dst_ip, dst_port).
    d = c.take(_order(c, "client_ip", "dst", "t", "src_port"))
    dstep = d.groupby(["client_ip", "dst"], sort=False)["src_port"].diff()
    pairs = dstep.notna().groupby(d["client_ip"]).sum().reindex(n.index, fill_value=0)
    small = dstep.between(1, small_step).groupby(d["client_ip"]).sum().reindex(n.index, fill_value=0)
    out["share_small_steps_per_dst"] = (small / pairs).where(pairs >= MIN_DST_PAIRS)

    seq = out["share_small_steps"].fillna(0) >= SEQUENTIAL_SHARE
    perdst = ~seq & (out["share_small_steps_per_dst"].fillna(0) >= PER_DST_SHARE)
    contained, pvals = _range_fits(c)
    rname, pval = _choose_range(contained.reindex(n.index), pvals.reindex(n.index), perdst)
    rname = rname.where(enough & ~fixed, "unknown")
    out["range"] = rname
    out["uniformity_p"] = pval.where(enough & ~fixed)
    uniform = out["uniformity_p"] >= UNIFORM_ALPHA
    out["allocation"] = np.select(
        [~enough, fixed, seq, perdst, uniform], ["unknown", "fixed", "sequential", "per-destination", "random"],
        default="unknown",
    )

    out["reuse_count"] = _reuse(c, reuse_window).reindex(n.index, fill_value=0).astype(np.int64)
    out["peak_concurrent"] = _peak_concurrent(c).reindex(n.index).astype(np.int64)
    sizes = {name: b - a + 1 for name, (a, b) in {**RANGES, "wide": WIDE}.items()}
    out["headroom"] = rname.map(sizes) - out["peak_concurrent"]

    hint, reason = _nat_hints(c, n, out)
    out["nat_hint"] = hint & enough & ~fixed
    out["nat_reason"] = reason.where(out["nat_hint"], "")
    out.index = names[out.index.to_numpy()]
    return out.rename_axis("client_ip").reset_index()[cols]


def _nat_hints(c: pd.DataFrame, n: pd.Series, out: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Signs of several hosts behind one address (documented in docs/analyses.md).

    ranges:    >= 10% of ports in the legacy range and >= 10% at 10000 or above (two allocators);
    sequences: most ports continue (+1..+NAT_STEP) a recent port used towards *another* destination,
               yet consecutive connections are not +1/+2 apart: several interleaved global counters.
    """
    p = c["src_port"]
    legacy = p.between(*RANGES["legacy"]).groupby(c["client_ip"]).mean()
    modern = (p >= 10000).groupby(c["client_ip"]).mean()
    two_ranges = (legacy >= 0.1) & (modern >= 0.1)

    # c is sorted by client then time, so "lag connections earlier, same client" is a plain shift
    client, port, dst = c["client_ip"].to_numpy(), p.to_numpy(), c["dst"].to_numpy()
    cont = np.zeros(len(c), dtype=bool)
    for lag in range(1, NAT_LAGS + 1):
        delta = port[lag:] - port[:-lag]
        cont[lag:] |= (client[lag:] == client[:-lag]) & (delta >= 1) & (delta <= NAT_STEP) & (dst[lag:] != dst[:-lag])
    share_cont = pd.Series(cont).groupby(c["client_ip"].to_numpy()).mean().reindex(n.index)
    interleaved = (share_cont >= NAT_SHARE) & (out["share_small_steps"].fillna(0) < SEQUENTIAL_SHARE)

    reason = pd.Series("", index=n.index, dtype=object)
    reason[interleaved.reindex(n.index, fill_value=False)] = "sequences"
    both = two_ranges.reindex(n.index, fill_value=False)
    reason[both] = np.where(reason[both] == "", "ranges", "ranges+sequences")
    return reason != "", reason
