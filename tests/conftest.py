"""Shared test fixtures: the third-party corpus beside the checkout, tool checks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
SAMPLES = ROOT / "sample_pcaps"


def corpus_files(sub: str = "") -> list[Path]:
    base = CORPUS / sub
    if not base.is_dir():
        return []
    exts = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".gz")
    return sorted(p for p in base.rglob("*") if p.is_file() and p.name.endswith(exts))


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS} (expected ../shared/corpus beside the checkout)")
    return CORPUS


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (CI installs it with apt-get)")
    return path


@pytest.fixture
def run(capsys):
    """Run the flowkit CLI in-process: (exit code, stdout, stderr)."""
    from flowkit.cli import main

    def _run(*args):
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run
