"""The dataset is the same whether flowkit.batch runs in-process or on a Dask cluster.

One LocalCluster (2 single-threaded worker processes) serves the whole module.
"""
from __future__ import annotations

import os
import time

import pytest

import flowkit

distributed = pytest.importorskip("distributed")

from test_batch_run import N_TCP, all_packets, dataset_rows, write_pcap, write_rotated  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    from flowkit.batch.executor import local_cluster

    with local_cluster(2) as c:  # what workers=2 starts
        yield c


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    base = tmp_path_factory.mktemp("dask")
    pkts = all_packets()
    n = len(pkts)
    write_rotated(str(base / "site-a"), pkts, [n // 3, 2 * n // 3])
    shifted = [(ts + 3600, b) for ts, b in pkts]  # a second sensor, an hour later
    write_rotated(str(base / "site-b"), shifted, [n // 2])
    write_pcap(str(base / "big.pcap"), [(ts + 600 * r, b) for r in range(6) for ts, b in pkts])
    return base


def without_timing(manifest: dict) -> dict:
    m = dict(manifest)
    m.pop("run")
    m["captures"] = [{k: v for k, v in e.items() if k != "seconds"} for e in m["captures"]]
    return m


@pytest.mark.parametrize("stitch", [False, True])
def test_cluster_output_equals_in_process(cluster, captures, tmp_path, stitch):
    inputs = [str(captures / "site-a"), str(captures / "site-b"), str(captures / "big.pcap")]
    local = flowkit.batch(inputs, tmp_path / "local", stitch=stitch, split_bytes=16 << 10)
    remote = flowkit.batch(inputs, tmp_path / "dask", stitch=stitch, split_bytes=16 << 10,
                           scheduler=cluster.scheduler_address)
    assert "dask" in remote["run"]["executor"] and local["run"]["executor"] == "in-process"
    assert without_timing(remote) == without_timing(local)
    assert dataset_rows(tmp_path / "dask").equals(dataset_rows(tmp_path / "local"))
    big = next(e for e in remote["captures"] if e["source"].endswith("big.pcap"))
    assert big["pieces"] > 2  # the big capture really ran as several byte ranges
    if stitch:  # each site's rotated files are one sequence: every connection once per site
        t = flowkit.read_dataset(tmp_path / "dask", filters=[("proto", "=", "tcp")])
        sites = [s.split(os.sep)[-2] for s in t["source"].to_pylist()]
        assert sites.count("site-a") == sites.count("site-b") == N_TCP


def test_local_cluster_workers_get_malloc_thresholds_for_big_buffers(cluster):
    # dask's default MALLOC_TRIM_THRESHOLD_=65536 made each task 2-3x slower
    from flowkit.batch.executor import WORKER_ENVIRON

    with distributed.Client(cluster) as client:
        seen = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert len(seen) == 2 and set(seen.values()) == {WORKER_ENVIRON["MALLOC_TRIM_THRESHOLD_"]}


def test_scheduler_from_environment(cluster, captures, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    m = flowkit.batch(str(captures / "site-a"), tmp_path / "out")
    assert cluster.scheduler_address in m["run"]["executor"]


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, captures):
    with pytest.raises(flowkit.FlowkitError, match="cannot reach"):
        flowkit.batch(str(captures / "site-a"), tmp_path / "out", scheduler="tcp://127.0.0.1:9")


def alive(proc) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # starts its own cluster: about 10 s on a busy 2-core machine
def test_workers_starts_and_stops_its_own_cluster(captures, tmp_path):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    m = flowkit.batch(str(captures / "site-a"), tmp_path / "out", workers=1)
    assert "LocalCluster (1 workers)" in m["run"]["executor"]
    local = flowkit.batch(str(captures / "site-a"), tmp_path / "local")
    assert dataset_rows(tmp_path / "out").equals(dataset_rows(tmp_path / "local"))
    for _ in range(50):  # worker processes exit shortly after the cluster closes
        left = {p.pid for p in me.children(recursive=True) if alive(p)} - before
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"worker processes left behind: {left}"
