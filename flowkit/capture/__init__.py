"""Open capture files (pcap, pcapng; gzip/bzip2/xz; stdin) and frame records into chunks."""
from flowkit.capture.ranges import split_ranges
from flowkit.capture.reader import read_chunks
from flowkit.capture.records import Damage, RecordChunk
from flowkit.capture.sniff import CaptureFormat, sniff_format

__all__ = ["CaptureFormat", "Damage", "RecordChunk", "read_chunks", "sniff_format", "split_ranges"]
