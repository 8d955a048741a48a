"""The on-disk flow dataset: atomic writes, date partitions, read-back with pushdown filters."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from flowkit.batch import atomic, read_dataset
from flowkit.batch.dataset import DATASET_SCHEMA, with_source, write_flows
from flowkit.errors import FlowkitError
from flowkit.flows.schema import FLOW_SCHEMA


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1e9)


def flow_table(starts: list[str], dst_ports: list[int]) -> pa.Table:
    """A flow table in FLOW_SCHEMA with the given start times (UTC) and ports; zeros elsewhere."""
    n = len(starts)
    cols = {}
    for field in FLOW_SCHEMA:
        if pa.types.is_timestamp(field.type):
            cols[field.name] = pa.array([ns(s) for s in starts], pa.int64()).cast(field.type)
        elif pa.types.is_string(field.type):
            cols[field.name] = pa.array(["tcp"] * n, field.type)
        elif pa.types.is_list(field.type):  # tunnel_parents
            cols[field.name] = pa.array([[]] * n, field.type)
        else:
            cols[field.name] = pa.array(np.zeros(n), pa.float64()).cast(field.type)
    cols["flow_id"] = pa.array(np.arange(n), pa.uint64())
    cols["dst_port"] = pa.array(dst_ports, pa.uint16())
    return pa.table(cols, schema=FLOW_SCHEMA)


def test_flows_land_in_utc_date_partitions(tmp_path):
    # 23:59:59 UTC and 00:00:01 UTC straddle midnight: two partitions whatever the local zone
    flows = flow_table(["2024-01-01T23:59:59", "2024-01-02T00:00:01", "2024-01-02T12:00:00"], [80, 443, 53])
    written = write_flows(str(tmp_path), "cap-1", with_source(flows, "caps/a.pcap"))
    assert written == [os.path.join("flows", "date=2024-01-01", "cap-1.parquet"),
                       os.path.join("flows", "date=2024-01-02", "cap-1.parquet")]
    back = read_dataset(tmp_path).sort_by("flow_id")
    assert back.schema == DATASET_SCHEMA
    assert back["date"].to_pylist() == ["2024-01-01", "2024-01-02", "2024-01-02"]
    assert back["source"].to_pylist() == ["caps/a.pcap"] * 3
    assert back["dst_port"].to_pylist() == [80, 443, 53]


def test_filters_dnf_and_expressions_and_columns(tmp_path):
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-01T10:00:00"] * 2, [80, 22]), "a.pcap"))
    write_flows(str(tmp_path), "b", with_source(flow_table(["2024-03-02T10:00:00"] * 3, [80, 443, 22]), "b.pcap"))
    one_day = read_dataset(tmp_path, filters=[("date", "=", "2024-03-02")], columns=["dst_port", "source"])
    assert one_day.column_names == ["dst_port", "source"]
    assert sorted(one_day["dst_port"].to_pylist()) == [22, 80, 443]
    web = read_dataset(tmp_path, filters=ds.field("dst_port").isin([80, 443]) & (ds.field("date") >= "2024-03-01"))
    assert sorted(web["dst_port"].to_pylist()) == [80, 80, 443]
    dnf_or = read_dataset(tmp_path, filters=[[("source", "=", "a.pcap"), ("dst_port", "=", 22)], [("dst_port", "=", 443)]])
    assert sorted(dnf_or["dst_port"].to_pylist()) == [22, 443]
    df = read_dataset(tmp_path / "flows", columns=["date"]).to_pandas()  # OUT/flows works too
    assert sorted(df["date"]) == ["2024-03-01"] * 2 + ["2024-03-02"] * 3


def test_date_filter_never_opens_other_partitions(tmp_path):
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-01T10:00:00"], [80]), "a.pcap"))
    write_flows(str(tmp_path), "b", with_source(flow_table(["2024-03-02T10:00:00"], [80]), "b.pcap"))
    # make the other day's file unreadable: pruning by partition must not touch it
    (tmp_path / "flows" / "date=2024-03-01" / "a.parquet").write_bytes(b"not parquet")
    assert read_dataset(tmp_path, filters=[("date", "=", "2024-03-02")])["source"].to_pylist() == ["b.pcap"]
    with pytest.raises(Exception):
        read_dataset(tmp_path)


def test_rewrite_replaces_a_units_files_and_drops_dates_it_no_longer_has(tmp_path):
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-01T10:00:00", "2024-03-02T10:00:00"], [1, 2]), "a"))
    write_flows(str(tmp_path), "b", with_source(flow_table(["2024-03-01T11:00:00"], [3]), "b"))
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-02T09:00:00"], [4]), "a"))
    back = read_dataset(tmp_path)
    assert sorted(zip(back["source"].to_pylist(), back["dst_port"].to_pylist())) == [("a", 4), ("b", 3)]
    assert not (tmp_path / "flows" / "date=2024-03-01" / "a.parquet").exists()


def test_half_written_temp_files_are_invisible_and_cleaned(tmp_path):
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-01T10:00:00"], [80]), "a"))
    part = tmp_path / "flows" / "date=2024-03-01"
    (part / (atomic.TMP_PREFIX + "x-b.parquet")).write_bytes(b"PAR1 cut off")  # as a killed writer leaves it
    assert read_dataset(tmp_path).num_rows == 1
    assert atomic.remove_stale_temps(str(tmp_path)) == 1
    assert sorted(os.listdir(part)) == ["a.parquet"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    dest = tmp_path / "m.json"
    atomic.write_json(str(dest), {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(str(dest)) as tmp:
            open(tmp, "w").write('{"v": 2')  # cut short
            raise RuntimeError("killed")
    assert dest.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert os.listdir(tmp_path) == ["m.json"]


def test_read_errors_are_one_line(tmp_path):
    with pytest.raises(FlowkitError, match="not a flowkit dataset"):
        read_dataset(tmp_path / "nope")
    write_flows(str(tmp_path), "a", with_source(flow_table(["2024-03-01T10:00:00"], [80]), "a"))
    with pytest.raises(FlowkitError, match="no column"):
        read_dataset(tmp_path, columns=["dst_port", "nonsense"])


def test_empty_dataset_reads_with_the_schema(tmp_path):
    (tmp_path / "flows").mkdir()
    t = read_dataset(tmp_path)
    assert t.num_rows == 0 and t.schema == DATASET_SCHEMA
