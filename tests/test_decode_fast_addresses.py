"""Address text conversion, checked against Python's ``ipaddress``."""
from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.decode.addresses import from_strings, to_strings
from flowkit.decode.schema import ADDR


def expected_text(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else ip.compressed


def test_known_forms():
    texts = ["192.0.2.1", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::", "fe80::1:0:0:1",
             "2001:db8:0:0:1:0:0:1", "::ffff:0:0", "64:ff9b::c000:201", "ff02::fb"]
    packed = from_strings(texts)
    assert packed.type == ADDR
    assert packed[0].as_py() == b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, 1])
    assert packed[4].as_py() == ipaddress.IPv6Address("::1").packed
    back = to_strings(packed).to_pylist()
    assert back[:7] == texts[:7]
    assert back[7] == "2001:db8::1:0:0:1"  # compressed like ipaddress
    assert back[8] == "0.0.0.0"  # ::ffff:0:0 is the IPv4-mapped 0.0.0.0
    assert back[9:] == texts[9:]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=4, max_size=4).map(lambda b: b"\0" * 10 + b"\xff\xff" + b),
    st.binary(min_size=1, max_size=3).map(lambda b: bytes(16 - len(b)) + b),  # ::x, mostly zeros
), max_size=40))
def test_to_strings_matches_ipaddress(raws):
    out = to_strings(pa.array(raws, ADDR)).to_pylist()
    assert out == [expected_text(r) for r in raws]
    assert from_strings(out).to_pylist() == raws


def test_nulls_chunked_and_sliced_inputs():
    arr = pa.array([b"\0" * 10 + b"\xff\xff\x01\x02\x03\x04", None, ipaddress.IPv6Address("::2").packed], ADDR)
    assert to_strings(arr).to_pylist() == ["1.2.3.4", None, "::2"]
    assert to_strings(arr.slice(1)).to_pylist() == [None, "::2"]
    assert to_strings(pa.chunked_array([arr, arr])).to_pylist() == ["1.2.3.4", None, "::2"] * 2
    assert from_strings(pa.array(["10.0.0.1", None])).to_pylist() == [b"\0" * 10 + b"\xff\xff\x0a\0\0\x01", None]
    assert to_strings(pa.array([], ADDR)).to_pylist() == []


def test_large_column_mixes_versions_in_place():
    rng = np.random.default_rng(7)
    m = np.zeros((50_000, 16), np.uint8)
    m[:, 10:12] = 0xFF
    m[:, 12:] = rng.integers(0, 256, (50_000, 4))
    v6 = rng.integers(0, 256, (50, 16)).astype(np.uint8)
    m[::7] = v6[rng.integers(0, 50, len(m[::7]))]
    arr = pa.FixedSizeBinaryArray.from_buffers(ADDR, len(m), [None, pa.py_buffer(m.reshape(-1))])
    out = to_strings(arr).to_pylist()
    sample = rng.integers(0, len(m), 2000)
    assert [out[i] for i in sample] == [expected_text(m[i].tobytes()) for i in sample]
    assert to_strings(m).to_pylist() == out  # the numpy (n, 16) matrix directly


def test_from_strings_rejects_garbage():
    with pytest.raises(ValueError, match="not-an-ip"):
        from_strings(["10.0.0.1", "not-an-ip"])
