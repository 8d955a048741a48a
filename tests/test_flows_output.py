"""FlowTable outputs: Parquet, CSV, JSON lines, Zeek conn.log TSV; schema and flow_id stability."""
from __future__ import annotations

import json

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import flowkit
from flowkit.errors import FlowkitError
from flowkit.flows.schema import FLOW_SCHEMA, MAY_BE_NULL
from conftest import SAMPLES, corpus_files
from flowgen import Conversation, batch, batches, pkt


@pytest.fixture(scope="module")
def table():
    c = Conversation("10.0.0.1", 40000, "10.0.0.2", 80).handshake()
    c.data(True, 10)
    c.close()
    udp = [pkt(c.t + 1, "10.0.0.3", 5000, "10.0.0.53", 53, proto="udp", payload=12)]
    return flowkit.flows([batch(c.packets + udp)])


def test_schema_is_the_contract(table):
    assert table.schema.equals(FLOW_SCHEMA)
    assert len(table) == 2


def test_parquet_round_trip(table, tmp_path):
    table.write(tmp_path / "f.parquet")
    assert pq.read_table(tmp_path / "f.parquet").equals(table.to_arrow())


def test_parquet_marks_the_columns_that_always_have_a_value_required(table, tmp_path):
    table.write(tmp_path / "f.parquet")
    fields = pq.ParquetFile(tmp_path / "f.parquet").schema  # the file's own schema, not Arrow's
    required = {fields.column(j).path.split(".")[0] for j in range(len(fields)) if fields.column(j).max_definition_level == 0}
    assert required == set(FLOW_SCHEMA.names) - MAY_BE_NULL - {"tunnel_parents"}  # a list's items have levels


def _encodings(path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    return {group.column(j).path_in_schema.split(".")[0]: set(group.column(j).encodings) for j in range(meta.num_columns)}


# docs/schema.md: the times and the six counters delta-encoded, the repeating text dictionary-encoded
DELTA = {"ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts", "src_pkts", "dst_pkts",
         "src_ip_bytes", "dst_ip_bytes", "src_payload_bytes", "dst_payload_bytes"}
DICTIONARY = {"proto", "src_ip", "dst_ip", "conn_state", "history", "service", "server_name"}


def test_parquet_encodings(table, tmp_path):
    table.write(tmp_path / "f.parquet")
    encodings = _encodings(tmp_path / "f.parquet")
    assert {name for name, e in encodings.items() if "DELTA_BINARY_PACKED" in e} == DELTA
    assert {name for name, e in encodings.items() if "RLE_DICTIONARY" in e} == DICTIONARY


def test_batch_files_are_written_as_flow_tables_are(table, tmp_path):
    from flowkit.batch.dataset import write_flows, with_source

    (rel,) = write_flows(str(tmp_path), "capture", with_source(table.to_arrow(), "capture.pcap"))
    encodings = _encodings(tmp_path / rel)
    assert {name for name, e in encodings.items() if "DELTA_BINARY_PACKED" in e} == DELTA
    assert {name for name, e in encodings.items() if "RLE_DICTIONARY" in e} == DICTIONARY | {"source"}
    assert pq.read_table(tmp_path / rel).drop_columns(["source"]).equals(table.to_arrow())


CAPTURES = [*sorted(SAMPLES.glob("*.pcap")), *corpus_files("zeek/traces/icmp"), *corpus_files("zeek/traces/tunnels")]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_only_the_nullable_columns_hold_nulls(path):
    """The schema's not-null columns are a promise the engine keeps on every capture (the
    Parquet writer trusts it); the nullable ones are those it leaves unset."""
    arrow = flowkit.flows(str(path)).to_arrow()
    nulls = {name for name in arrow.column_names if arrow.column(name).null_count}
    assert nulls <= MAY_BE_NULL


def test_csv_and_jsonl(table, tmp_path):
    table.write(tmp_path / "f.csv")
    back = pcsv.read_csv(tmp_path / "f.csv")
    assert back.num_rows == 2 and back.column("history").to_pylist() == table.to_arrow().column("history").to_pylist()
    table.write(tmp_path / "f.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["src_port"] for r in rows] == [40000, 5000]
    # the SYN is sent at 1000.0 + one 0.01 s step (flowgen.Conversation): ISO 8601, nine digits, Z
    assert rows[1]["syn_ts"] is None and rows[0]["ts_start"] == "1970-01-01T00:16:40.010000000Z"


def test_zeek_conn_log(table, tmp_path):
    table.write(tmp_path / "conn.log")
    lines = (tmp_path / "conn.log").read_text().splitlines()
    fields = next(line for line in lines if line.startswith("#fields")).split("\t")[1:]
    rows = [dict(zip(fields, line.split("\t"))) for line in lines if not line.startswith("#")]
    assert fields[:6] == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    assert rows[0]["history"] == "ShADFf"  # SYN, SYN-ACK, ACK, data, FIN, FIN, (ACK already seen)
    assert rows[0]["orig_pkts"] == str(table.to_arrow().column("src_pkts")[0].as_py())
    assert rows[1]["service"] == "-" and rows[1]["proto"] == "udp"
    table.write(tmp_path / "conn.txt", format="zeek")

    def stamped(text):  # the #open and #close lines carry the time of writing
        return [line for line in text.splitlines() if not line.startswith(("#open", "#close"))]

    assert stamped((tmp_path / "conn.txt").read_text()) == stamped((tmp_path / "conn.log").read_text())


def test_unknown_extension_is_a_clear_error(table, tmp_path):
    with pytest.raises(FlowkitError, match="format"):
        table.write(tmp_path / "f.xyz")


def test_flow_id_is_stable_across_chunking():
    c = Conversation("10.0.0.1", 40000, "10.0.0.2", 80).handshake()
    c.close()
    ids = {tuple(flowkit.flows(batches(c.packets, cuts)).to_arrow().column("flow_id").to_pylist())
           for cuts in ([], [1], [2, 4], list(range(1, 7)))}
    assert len(ids) == 1


def test_parquet_is_zstd_with_dictionaries_only_for_repeating_columns(table, tmp_path):
    path = table.write(tmp_path / "f.parquet")
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.to_arrow_schema().names
    chunks = {names[j]: meta.row_group(0).column(j) for j in range(meta.num_columns)}
    assert {c.compression for c in chunks.values()} == {"ZSTD"}
    for name in ("proto", "conn_state", "src_ip", "history"):
        assert chunks[name].dictionary_page_offset is not None, name
    # unique values, and integers (zstd packs repeating ports as well as a dictionary would)
    for name in ("flow_id", "ts_start", "community_id", "src_pkts", "dst_port"):
        assert chunks[name].dictionary_page_offset is None, name
    assert pq.read_table(path).equals(table.to_arrow())
