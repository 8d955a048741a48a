"""Finding captures for a batch run: directories, rotated names, globs, compressed copies."""
from __future__ import annotations

import hashlib
import os

import pytest

from flowkit.batch.inputs import discover, looks_like_capture, natural_key, output_key, sha256_file
from flowkit.errors import FlowkitError


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name",
    ["a.pcap", "a.pcapng", "a.cap", "A.PCAP", "a.pcap.gz", "a.pcapng.bz2", "a.cap.xz",
     "dump.pcap0", "dump.pcap1", "dump.pcap12", "dump.pcap3.gz", "trace-2024-01-01_10:00.pcap"],
)
def test_capture_names_are_recognised(name):
    assert looks_like_capture(name)


@pytest.mark.parametrize("name", ["notes.txt", "a.pcap.txt", "a.json", "pcap", "a.gz", "a.pcapx"])
def test_other_names_are_not(name):
    assert not looks_like_capture(name)


def test_directory_is_searched_recursively_in_rotation_order(tmp_path):
    d = tmp_path / "caps"
    for n in (10, 2, 1, 0):
        touch(d / f"dump.pcap{n}")
    touch(d / "dump.pcap")
    touch(d / "sub" / "deeper" / "x.pcapng.gz")
    touch(d / "README.md")
    touch(d / ".hidden" / "skip.pcap")  # temp/hidden directories are not inputs
    found = [c.source for c in discover(str(d))]
    base = str(d)
    assert found == [
        os.path.join(base, n)
        for n in ("dump.pcap", "dump.pcap0", "dump.pcap1", "dump.pcap2", "dump.pcap10", "sub/deeper/x.pcapng.gz")
    ]


def test_files_dirs_and_globs_together_each_file_once(tmp_path):
    a = touch(tmp_path / "a" / "one.pcap", b"12345")
    touch(tmp_path / "a" / "two.pcap")
    b = touch(tmp_path / "b" / "weird.name", b"abc")  # explicit files are taken whatever their name
    found = discover([str(b), str(tmp_path / "a"), str(tmp_path / "a" / "*.pcap"), str(a)])
    assert [os.path.basename(c.source) for c in found] == ["weird.name", "one.pcap", "two.pcap"]
    sizes = {os.path.basename(c.source): c.size for c in found}
    assert sizes == {"weird.name": 3, "one.pcap": 5, "two.pcap": 1}
    assert all(os.path.isabs(c.path) for c in found)


def test_recursive_glob(tmp_path):
    touch(tmp_path / "x" / "y" / "t-2024-01-01_10:00.pcap")
    touch(tmp_path / "x" / "t.cap")
    found = discover(str(tmp_path / "**" / "*.pcap"))
    assert [os.path.basename(c.source) for c in found] == ["t-2024-01-01_10:00.pcap"]


def test_source_keeps_the_path_as_given(tmp_path, monkeypatch):
    touch(tmp_path / "caps" / "a.pcap")
    monkeypatch.chdir(tmp_path)
    assert [c.source for c in discover("caps")] == [os.path.join("caps", "a.pcap")]
    assert [c.source for c in discover("./caps/")] == [os.path.join("caps", "a.pcap")]


@pytest.mark.parametrize("bad", ["missing.pcap", "nothing-*.pcap"])
def test_missing_inputs_are_one_line_errors(tmp_path, bad):
    with pytest.raises(FlowkitError) as info:
        discover(str(tmp_path / bad))
    assert bad in str(info.value) and "\n" not in str(info.value)


def test_directory_without_captures_is_an_error(tmp_path):
    touch(tmp_path / "notes.txt")
    with pytest.raises(FlowkitError, match="no capture files"):
        discover(str(tmp_path))


def test_sha256_streams_the_whole_file(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    p = touch(tmp_path / "big.pcap", data)
    assert sha256_file(str(p), block=1 << 16) == hashlib.sha256(data).hexdigest()


def test_output_keys_are_file_names_unique_per_source():
    keys = {output_key(s) for s in ("a/dump.pcap1", "b/dump.pcap1", "dump.pcap1", "a/dump.pcap2")}
    assert len(keys) == 4
    k = output_key("x/trace-2024-01-01_10:00 (copy).pcap")
    assert "/" not in k and ":" not in k and " " not in k and k.startswith("trace-2024-01-01_10")


def test_natural_key_orders_numbers_numerically():
    names = ["f.pcap10", "f.pcap9", "f.pcap", "f.pcap1"]
    assert sorted(names, key=natural_key) == ["f.pcap", "f.pcap1", "f.pcap9", "f.pcap10"]
