"""The flowkit command as a process: standard input, tracebacks, exit status, the console script."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import flowkit
from conftest import ROOT, SAMPLES


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def flowkit_process(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "flowkit", *map(str, args)], input=stdin,
                          capture_output=True, timeout=120)


def test_stdin_and_exit_status():
    proc = flowkit_process("handshakes", "-", "--json", stdin=(SAMPLES / "refused.pcap").read_bytes())
    assert proc.returncode == 0, proc.stderr
    rows = json_lines(proc.stdout.decode())
    assert [(r["dst_port"], r["conn_state"]) for r in rows] == [(8081, "REJ")]


def test_no_traceback_unless_debug(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    proc = flowkit_process("flows", junk)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert err.startswith(f"flowkit: {junk}: offset 0: ") and "Traceback" not in err
    proc = flowkit_process("flows", junk, "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr.decode()


def test_console_script():
    exe = shutil.which("flowkit")
    if exe is None:
        pytest.skip("the flowkit console script is not on PATH (pip install -e .)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"flowkit {flowkit.__version__}"


def _run_with_tty_stderr(args) -> tuple[int, str, bytes]:
    """Run flowkit with stderr on a pseudo-terminal (so the progress bar is allowed)."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "flowkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    out = proc.stdout.read().decode()
    proc.wait(timeout=120)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child side is closed
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    return proc.returncode, out, err


@pytest.mark.slow
def test_progress_bar_on_a_terminal_keeps_stdout_clean():
    rc, out, err = _run_with_tty_stderr(["flows", SAMPLES / "mixed.pcap", "-n", "2"])
    assert rc == 0
    # the bar never reaches stdout (mixed.pcap: 426 TCP/UDP connections and one ICMP flow)
    assert out.strip().splitlines()[-1] == "2 of 427 flows"
    assert b"Traceback" not in err
    rc, out, err = _run_with_tty_stderr(["flows", SAMPLES / "mixed.pcap", "-n", "2", "--quiet"])
    assert rc == 0 and err == b""


# numba is no longer a dependency; it stays listed because nothing may import it
HEAVY = ("pandas", "numba", "numpy", "pyarrow", "rich.table", "dask", "flowkit.decode", "flowkit.flows")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["flows", "--help"], ["handshakes", "--help"]])
def test_version_and_help_stay_light(args):
    # --version and --help must not pay for the data stack: only the commands that read
    # captures import it, inside the command
    code = ("import sys; from flowkit.cli import main; rc = main(%r); "
            "print(rc, [m for m in %r if m in sys.modules])" % (args, HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr


def test_console_script_exit_runs_exit_handlers_and_flushes():
    """run() skips interpreter teardown but still flushes output and runs atexit handlers."""
    code = ("import atexit, sys; from flowkit import cli; "
            "atexit.register(lambda: print('exit handler ran')); "
            "sys.argv = ['flowkit', 'flows', sys.argv[1], '--quiet', '--limit', '3']; cli.run()")
    proc = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "dns.pcap")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "src_ip" in proc.stdout and proc.stdout.rstrip().endswith("exit handler ran")
    bad = subprocess.run([sys.executable, "-c", code, "/nonexistent.pcap"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no such file" in bad.stderr


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_output_into_a_closed_pipe_exits_0_without_traceback(extra):
    """``flowkit flows x.pcap | head -1``: the reader goes away, flowkit ends quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "flowkit", "flows", str(SAMPLES / "mixed.pcap"), "-n", "400",
                             *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # like head(1) exiting after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in err and b"Error" not in err
