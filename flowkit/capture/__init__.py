"""Open capture files (pcap, pcapng; gzip/bzip2/xz; stdin) and frame records into chunks."""
from flowkit.capture.records import Damage, RecordChunk

__all__ = ["Damage", "RecordChunk"]
