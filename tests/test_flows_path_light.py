"""The capture -> flows -> Parquet path stays light: no pandas, no scipy.linalg, no numba, same values."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from conftest import ROOT, SAMPLES
from flowkit.decode import _arrow


@pytest.mark.parametrize("type", [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.int64(), pa.float64(),
                                  pa.timestamp("ns", tz="UTC")])
def test_array_matches_pa_array(type):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 200, 1000)
    if pa.types.is_floating(type):
        values = values / 7
    mask = rng.random(1000) < 0.1
    for m in (None, mask):
        want = pa.array(values, pa.int64() if pa.types.is_timestamp(type) else type, mask=m)
        if pa.types.is_timestamp(type):
            want = want.cast(type)
        got = _arrow.array(values[::1], type, mask=m)
        assert got.equals(want)
        if m is None:  # reading back: the same values as Arrow's own conversion
            assert np.array_equal(_arrow.to_numpy(want), want.to_numpy(zero_copy_only=False))


def test_bools_and_strided_input():
    flags = np.arange(37) % 3 == 0
    assert _arrow.array(flags, pa.bool_()).equals(pa.array(flags))
    matrix = np.arange(60, dtype=np.int64).reshape(20, 3)
    assert _arrow.array(matrix[:, 1], pa.uint16()).equals(pa.array(matrix[:, 1], pa.uint16()))


def test_strings_from_fixed_width_rows_end_at_the_first_nul():
    rows = np.zeros((4, 5), np.uint8)
    rows[0, :3] = list(b"ShA")
    rows[1, :] = list(b"abcde")
    rows[3, :3] = list(b"a\0b")
    want = pa.array(rows.view("S5").ravel(), pa.binary()).cast(pa.string())
    assert _arrow.fixed_strings(rows).equals(want)
    assert _arrow.fixed_strings(rows).to_pylist() == ["ShA", "abcde", "", "a"]
    words = np.array(["SF", "S0", "SF", "REJ"], dtype=object)
    assert _arrow.texts(words).equals(pa.array(list(words), pa.string()))
    assert _arrow.strings(["é", "", "x"]).equals(pa.array(["é", "", "x"]))


def test_flows_to_parquet_imports_neither_pandas_nor_scipy_linalg(tmp_path):
    # the kernels are C extensions: numba must not be imported either
    code = (
        "import sys, flowkit\n"
        "t = flowkit.flows(sys.argv[1]); t.write(sys.argv[2])\n"
        "print(len(t), 'pandas' in sys.modules, 'scipy.linalg' in sys.modules, 'numba' in sys.modules)\n"
    )
    out = tmp_path / "f.parquet"
    proc = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "mixed.pcap"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    n, pandas, linalg, numba = proc.stdout.split()
    assert int(n) > 0 and pandas == "False" and linalg == "False" and numba == "False"
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == int(n)


def test_choose_and_texts_keep_row_order():
    codes = np.array([1, 0, 0, 1, 1])
    assert _arrow.choose(codes, ["tcp", "udp"]).to_pylist() == ["udp", "tcp", "tcp", "udp", "udp"]
    words = np.array(["S1", "SF", "S1", "OTH", "SF"], dtype=object)
    assert _arrow.texts(words).to_pylist() == list(words)
    assert len(_arrow.texts(np.array([], dtype=object))) == 0


@pytest.mark.parametrize("kind", ["uint16", "ts_nulls", "str_nulls", "bool", "float", "str_sliced"])
def test_take_matches_arrow_take(kind):
    import pyarrow.compute as pc

    rng = np.random.default_rng(11)
    n = 1000
    arrays = {
        "uint16": pa.array(rng.integers(0, 100, n), pa.uint16()),
        "ts_nulls": pa.array([None if i % 7 == 0 else i for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "str_nulls": pa.array([None if i % 5 == 0 else "s" * (i % 13) for i in range(n)], pa.string()),
        "bool": pa.array(rng.random(n) < 0.3),
        "float": pa.array(rng.random(n)),
        "str_sliced": pa.array(["é" * (i % 4) for i in range(n)]).slice(100, 800),
    }
    arr = arrays[kind]
    order = rng.permutation(len(arr))[: len(arr) * 2 // 3]
    got = _arrow.take(arr, order)
    assert got.equals(pc.take(arr, pa.array(order)))
    assert got.null_count == pc.take(arr, pa.array(order)).null_count


def test_flows_to_parquet_cli_path_skips_arrow_compute(tmp_path):
    code = (
        "import sys\n"
        "from flowkit.cli import main\n"
        "sys.argv = ['flowkit', 'flows', sys.argv[1], '-o', sys.argv[2]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pyarrow.compute' in sys.modules, 'numba' in sys.modules, file=sys.stderr)\n"
    )
    out = tmp_path / "f.parquet"
    proc = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "mixed.pcap"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.stderr.split()[-2:] == ["False", "False"], proc.stderr
    assert out.stat().st_size > 0
