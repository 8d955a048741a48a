"""Common input handling: every analysis accepts a FlowTable, an Arrow table or a pandas DataFrame."""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.errors import FlowkitError

TS_COLUMNS = ("ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts")
DYNAMIC_FIRST = 49152  # RFC 6335: dynamic/private ports 49152-65535


class AnalysisInputError(FlowkitError):
    """The flows given to an analysis lack a column it needs."""


def _frame(flows, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return the flows as a pandas DataFrame with timestamps as datetime64[ns, UTC].

    Accepts anything with ``to_pandas()`` (FlowTable, pyarrow.Table) or a DataFrame.
    The caller's frame is never modified.
    """
    if isinstance(flows, pd.DataFrame):
        df = flows.copy(deep=False)
    elif hasattr(flows, "to_pandas"):
        df = flows.to_pandas()
    else:
        raise AnalysisInputError(
            f"expected a FlowTable or a pandas DataFrame of flows, got {type(flows).__name__}"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"flows lack column(s) {', '.join(missing)} (see docs/schema.md)")
    for col in TS_COLUMNS:
        if col in df.columns:
            df[col] = _utc_ns(df[col])
    if "proto" in df.columns and not df["proto"].isin(["tcp", "udp"]).all():
        df["proto"] = df["proto"].astype(str).str.lower()
    return df.reset_index(drop=True)


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _utc_ns(s: pd.Series) -> pd.Series:
    """Timestamps as datetime64[ns, UTC] whatever resolution or tz they came with."""
    if s.dtype == _UTC_NS:
        return s
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        s = pd.to_datetime(s, utc=True)
    elif str(s.dt.tz) != "UTC":
        s = s.dt.tz_convert("UTC")
    return s.dt.as_unit("ns")


def ns(s: pd.Series) -> np.ndarray:
    """Integer nanoseconds since the epoch as float64 with NaN for missing.

    Differences are taken on the int64 values first (see diff_seconds) so they stay exact.
    """
    v = s.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT")).view("int64")
    return v


def diff_seconds(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    """later - earlier in float seconds, computed from int64 nanoseconds; NaN when either is missing."""
    a = ns(later)
    b = ns(earlier)
    nat = np.iinfo(np.int64).min
    out = (a - b).astype(np.float64) / 1e9
    out[(a == nat) | (b == nat)] = np.nan
    return out


def seconds(s: pd.Series) -> np.ndarray:
    """Timestamps as float seconds since the epoch (for ordering and windows, not for RTTs)."""
    v = ns(s)
    out = v.astype(np.float64) / 1e9
    out[v == np.iinfo(np.int64).min] = np.nan
    return out


def tcp_only(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["proto"] == "tcp"].reset_index(drop=True)


def with_ports(df: pd.DataFrame) -> pd.DataFrame:
    """TCP and UDP flows: the protocols whose ports are ports (ICMP's are type/code, others have none)."""
    return df[df["proto"].isin(("tcp", "udp"))].reset_index(drop=True)


def col_or(df: pd.DataFrame, name: str, default) -> pd.Series:
    """A column, or a constant when a user frame does not carry it."""
    if name in df.columns:
        return df[name]
    return pd.Series(default, index=df.index)
