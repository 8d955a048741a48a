"""Mutation check: plant small deliberate bugs, one at a time, and see whether the tests notice.

    python tools/mutants.py                  # every mutant: killed / survived table
    python tools/mutants.py --list           # names, files and test files only
    python tools/mutants.py --check          # every snippet still in this checkout, once (instant)
    python tools/mutants.py rstrh cwr        # only these mutants
    python tools/mutants.py --markdown       # the table as docs/testing.md shows it

The committed HEAD of this checkout is cloned into a temporary directory (beside a link to
../shared so the corpus tests find the corpus), built once, and then for each mutant: one
unique code snippet is replaced, the extensions are rebuilt when a C file changed, the
mutant's test files run (``pytest -x``), and the file is restored. A mutant is *killed*
when the tests fail, *survived* when they pass. A snippet that is no longer in the file,
or is there more than once, stops the run with an error: the code moved, so the mutant
must be updated (rules move between files during refactoring).

Not part of CI (about a minute per C mutant); run it before landing changes to decode/,
flows/, capture/, batch/ or the ledger. Every listed mutant must be killed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str  # the bug, in words
    path: str  # file, relative to the repository root
    find: str  # unique snippet
    replace: str
    tests: tuple[str, ...]  # test files (pytest node ids allowed)


TRUTH = ("tests/test_flows_truth.py",)
SETTLED = "tests/test_flows_budget.py::test_spilled_keys_leave_the_filter_once_settled"
BATCHES = "tests/test_flows_services_parts.py::test_runs_named_a_record_batch_at_a_time_equal_the_unlimited_run"
M = Mutant
MUTANTS = [
    # ---- the ten bugs the issue measured
    M("cwr", "the flag-count loop stops one short (CWR never counted)", "flowkit/flows/_conn.h",
      "for (int k = 0; k < 8; k++)\n        if (flags & FLAG_BITS[k])",
      "for (int k = 0; k < 7; k++)\n        if (flags & FLAG_BITS[k])", TRUTH),
    M("rstrh", "RSTRH reported as RSTR", "flowkit/flows/_rows.c",
      "return o_in ? RSTRH : RSTR;", "return RSTR;", TRUTH),
    M("ledger-icmpv6", "ICMPv6 packets counted as other_ip in the ledger (total unchanged)", "flowkit/ledger.py",
      '"icmp": (1, 58)}', '"icmp": (1,)}', ("tests/test_ledger_corpus.py",)),
    M("resume-parquet", "resume trusts a capture whose Parquet output was lost", "flowkit/batch/manifest.py",
      'for p in [*entry.get("outputs", []), entry.get("ledger", "")])',
      'for p in [entry.get("ledger", "")])', ("tests/test_batch_run.py",)),
    M("ack-gap", "a segment missing from the capture but ACKed counts 0 payload bytes", "flowkit/flows/_rows.c",
      "int64_t s = E->lastrel > E->ackrel ? E->lastrel : E->ackrel;", "int64_t s = E->lastrel;", TRUTH),
    M("ip-bytes-swap", "orig/resp IP bytes swapped", "flowkit/flows/_rows.c",
      "SET(oipb, O->ipb);\n        SET(ripb, R->ipb);",
      "SET(oipb, R->ipb);\n        SET(ripb, O->ipb);", TRUTH),
    M("last-record", "the last record of each read buffer dropped", "flowkit/capture/pcap.py",
      "            cols.n += n\n            index += n\n",
      "            cols.n += max(n - 1, 0)\n            index += n\n",
      ("tests/test_capture_boundaries.py", "tests/test_capture_formats.py")),
    M("cid-ports", "Community ID ports swapped", "flowkit/flows/_sha1.c",
      "block[n] = (uint8_t)(ap >> 8);\n            block[n + 1] = (uint8_t)ap;\n"
      "            block[n + 2] = (uint8_t)(bp >> 8);\n            block[n + 3] = (uint8_t)bp;",
      "block[n] = (uint8_t)(bp >> 8);\n            block[n + 1] = (uint8_t)bp;\n"
      "            block[n + 2] = (uint8_t)(ap >> 8);\n            block[n + 3] = (uint8_t)ap;",
      ("tests/test_flows.py",)),
    M("tier-49153", "dynamic port tier starts at 49153", "flowkit/analysis/_frame.py",
      "DYNAMIC_FIRST = 49152", "DYNAMIC_FIRST = 49153", ("tests/test_analysis_ports.py",)),
    M("pcapng-sections", "pcapng interfaces not reset by a new section", "flowkit/capture/pcapng.py",
      "                    if section:\n                        ifs = _Interfaces()",
      "                    if section:\n                        ifs = ifs", ("tests/test_capture_formats.py",)),
    # ---- one per rule the truth table, ledger and resume tests check
    M("rej", "an answered-by-RST attempt is not REJ", "flowkit/flows/_rows.c",
      "if (os == SYN_SENT || os == SYN_ACK_SENT || (os == RESET", "if (os == SYN_ACK_SENT || (os == RESET", TRUTH),
    M("rstos0", "RSTOS0 history pattern never matches (OTH instead)", "flowkit/flows/_rows.c",
      "    if (h[i] != 'S')\n        return 0;", "    if (h[i] != 'X')\n        return 0;", TRUTH),
    M("sh", "SH reported as S2", "flowkit/flows/_rows.c", "return r_in ? SH : S2;", "return S2;", TRUTH),
    M("shr", "SHR reported as S3", "flowkit/flows/_rows.c", "return o_in ? SHR : S3;", "return S3;", TRUTH),
    M("udp-states", "UDP S0 and SHR swapped", "flowkit/flows/_rows.c",
      "return uo && ur ? SF : uo ? S0 : ur ? SHR : OTH;", "return uo && ur ? SF : uo ? SHR : ur ? S0 : OTH;", TRUTH),
    M("likely-port-flip", "a first packet from a likely server port (e.g. a SYN-ACK from 80) is not flipped",
      "flowkit/flows/_rules.h", "        return (flags & TH_SYN) == 0 && sport < dport;\n    return 1;",
      "        return (flags & TH_SYN) == 0 && sport < dport;\n    return 0;", TRUTH),
    M("fin-size", "the FIN's sequence number counted as a payload byte", "flowkit/flows/_rows.c",
      "if (E->fins > 0 && s != 0)\n        s -= 1;", "if (0)\n        s -= 1;", TRUTH),
    M("seq-wrap", "sequence differences not taken modulo 2^32", "flowkit/flows/_conn.h",
      "int64_t d = sub(a, b) & 0xFFFFFFFF;", "int64_t d = sub(a, b);", TRUTH),
    M("rexmit-scale", "retransmission letters at 1, 2, 4... instead of 1, 10, 100", "flowkit/flows/_conn.h",
      "while (count >= 10 && count % 10 == 0)\n        count /= 10;",
      "while (count >= 2 && count % 2 == 0)\n        count /= 2;", TRUTH),
    M("scale-hundred", "no letter at the 100th retransmission (only the 1st and 10th)", "flowkit/flows/_conn.h",
      "    while (count >= 10 && count % 10 == 0)\n        count /= 10;",
      "    if (count >= 10 && count % 10 == 0)\n        count /= 10;", TRUTH),
    M("zero-window-rst", "a zero window on a RST gets a letter", "flowkit/flows/_conn.h",
      "if (win == 0 && !rst && p->state != CLOSED", "if (win == 0 && p->state != CLOSED", TRUTH),
    M("psh-urg", "PSH/URG and ECE/CWR counted into each other's columns", "flowkit/flows/_conn.h",
      "b->fl[k]++;", "b->fl[k ^ (k >> 2 == 1)]++;", TRUTH),
    M("gap-side", "a content gap's letter given to the wrong side (G for g)", "flowkit/flows/_conn.h",
      "scaled(H, C, c, e->gapcnt, e_is_orig ? 'G' : 'g');",
      "scaled(H, C, c, e->gapcnt, e_is_orig ? 'g' : 'G');", TRUTH),
    M("ledger-fragment", "non-first fragments counted as malformed in the ledger (total unchanged)",
      "flowkit/ledger.py", '("fragment", Status.FRAGMENT),', '("malformed", Status.FRAGMENT),',
      ("tests/test_ledger_corpus.py",)),
    M("resume-ledger", "resume trusts a capture whose ledger was lost", "flowkit/batch/manifest.py",
      'for p in [*entry.get("outputs", []), entry.get("ledger", "")])',
      'for p in [*entry.get("outputs", [])])', ("tests/test_batch_run.py",)),
    # ---- tunnel parents
    M("tunnel-carrier-depth", "an inner packet's carrier is any earlier row of its record, not the one a level out",
      "flowkit/flows/_rules.h", "p->tunnel_depth[i - 1] + 1 != p->tunnel_depth[i])",
      "p->tunnel_depth[i - 1] > p->tunnel_depth[i])", ("tests/test_flows_tunnel_parents.py",)),
    M("tunnel-parent-span", "a parent key names only the parent connection of its first packet", "flowkit/flows/_rows.c",
      "Py_ssize_t end = bound_i64(its0, lo, hi, s[P_LAST], 1);", "Py_ssize_t end = bound_i64(its0, lo, hi, s[P_FIRST], 1);",
      ("tests/test_flows_tunnel_parents.py",)),
    # ---- the memory budget's filter of spilled keys
    M("filter-unsettled", "a layer of spilled keys goes while older layers of its class still have unsettled rows",
      "flowkit/flows/keyfilter.py", "if (kept := [layer for layer in chain if layer[3] > tmax])",
      "if (kept := [layer for layer in chain[-1:] if layer[3] > tmax])", (SETTLED,)),
    M("filter-deferred", "the kernel does not look in the layers of deferred keys (they leave with their layer)",
      "flowkit/flows/keyfilter.py", "pairs = [layer[:2] for layer in self._all()]",
      "pairs = [layer[:2] for layer in self._all()[len(self._held):]]", (SETTLED,)),
    M("filter-classes", "spilled keys in one layer whatever their deadline (TCP's idle timeout holds UDP keys)",
      "flowkit/flows/stream.py", "cls = np.frexp((deadlines - last).astype(np.float64))[1]",
      "cls = np.zeros(count, int)", (SETTLED,)),
    M("last-stale", "an open row's last packet time (the spill's choice) kept from its first packet",
      "flowkit/flows/_stream.c", "    TM(*r, c, T_LAST) = may_announce(row) ? INT64_MAX : row->tspkt;",
      "    TM(*r, c, T_LAST) = may_announce(row) ? INT64_MAX : row->ts0;",
      ("tests/test_flows_stream.py",)),
    M("deadline-stale", "an open row's deadline (eviction's test, the spill's grouping) kept from its first packet",
      "flowkit/flows/_stream.c", "    TM(*r, c, T_DEADLINE) = deadline(row, tcp_ns, udp_ns);",
      "    TM(*r, c, T_DEADLINE) = add(row->ts0, timeout_of(row->proto, tcp_ns, udp_ns));",
      ("tests/test_flows_stream.py", "tests/test_flows_budget.py")),
    M("pack-runs", "byte columns one apart packed as one run when spilled rows go to disk",
      "flowkit/flows/_rows.c", "        if (r && start[r - 1] + len[r - 1] == idx[j]) {",
      "        if (r && start[r - 1] + len[r - 1] + 1 >= idx[j]) {",
      ("tests/test_flows_overflow_blocks.py", "tests/test_flows_budget.py")),
    # ---- spilled rows kept on disk for the output (overflow.py's final segments)
    M("final-mask", "rows whose keys had packets deferred are also read as final (the replay's rows twice)",
      "flowkit/flows/overflow.py", "        return rows if seg.keep is None else rows_where(rows, seg.keep)",
      "        return rows", ("tests/test_flows_budget.py",)),
    M("final-carriers", "segments holding tunnel carriers kept on disk (their flow_ids never enter the parent index)",
      "flowkit/flows/overflow.py", "            if not seg.encloses and self._keep_final(seg):",
      "            if self._keep_final(seg):", ("tests/test_flows_tunnel_parents.py",)),
    M("final-stretch-order", "a segment joins a stretch whose last start is after its first (a run out of order)",
      "flowkit/flows/overflow.py", "after = [r for r in self.final if r[-1].last < seg.first]",
      "after = list(self.final)", ("tests/test_flows_budget.py",)),
    M("final-late-names", "rows kept on disk are not taken back when a late announcement may name one",
      "flowkit/flows/stream.py", "            if final is not None:\n                for block in final.blocks():",
      "            if False:\n                for block in final.blocks():",
      ("tests/test_flows_services_parts.py",)),
    # ---- data connections named late in the sorted runs on disk
    M("late-names-candidates", "rows of a run numbered per record batch, not across the run, when searched",
      "flowkit/flows/finished.py", "                first += block.num_rows\n", "", (BATCHES,)),
    M("late-names-rewrite", "rows of a run numbered per record batch, not across the run, when rewritten",
      "flowkit/flows/spill.py", "                    first += batch.num_rows\n", "", (BATCHES,)),
    # ---- finished rows to Arrow (_rows.c)
    M("handshake-null", "a missing handshake time is not null (ack_ts reads as -1 ns)", "flowkit/flows/_rows.c",
      "SETBIT(B_ACKTS, i, O->ackts >= 0);", "SETBIT(B_ACKTS, i, 1);", ("tests/test_flows_rows.py",)),
    M("local-low-word", "local networks matched on an address's high 64 bits alone", "flowkit/flows/_rows.c",
      "if ((hi & nets[2]) == nets[0] && (lo & nets[3]) == nets[1])", "if ((hi & nets[2]) == nets[0])",
      ("tests/test_flows_rows.py", "tests/test_flows_local.py")),
    M("text-width", "a history (or server name) filling its whole width loses its last byte", "flowkit/flows/_rows.c",
      "pos += text_len(rows + i * stride, width);", "pos += text_len(rows + i * stride, width - 1);",
      ("tests/test_flows_rows.py",)),
]


def sh(cmd, cwd, log=None, timeout=3600) -> int:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if log is not None:
        log.append(proc.stdout)
    return proc.returncode


def build(tree: Path, log: list, changed: str | None = None) -> bool:
    """Build the extensions; ``changed`` (a .c or .h file) has its targets removed first, so
    they are rebuilt whatever the file times say (a timestamp check can miss a fast edit)."""
    if changed:
        stem = Path(changed).stem if changed.endswith(".c") else "*"  # a header: every kernel
        for so in [*tree.glob(f"flowkit/**/{stem}.*.so"), *tree.glob(f"build/**/{stem}.*.so"),
                   *tree.glob(f"build/**/{stem}.o")]:
            so.unlink()
    return sh([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], tree, log) == 0


def apply(tree: Path, m: Mutant) -> str:
    """Replace the mutant's snippet; returns the original text. Fails loudly unless it occurs once."""
    path = tree / m.path
    if not path.is_file():
        raise SystemExit(f"mutant {m.name}: {m.path} does not exist (moved?): update tools/mutants.py")
    text = path.read_text()
    hits = text.count(m.find)
    if hits != 1:
        raise SystemExit(f"mutant {m.name}: snippet found {hits} times in {m.path} (code moved or changed): "
                         f"update tools/mutants.py\n--- snippet ---\n{m.find}")
    path.write_text(text.replace(m.find, m.replace))
    return text


def run_one(tree: Path, m: Mutant) -> tuple[str, float]:
    t0 = time.perf_counter()
    original = apply(tree, m)
    is_c = m.path.endswith((".c", ".h"))
    log: list = []
    try:
        if is_c and not build(tree, log, m.path):
            return "build error", time.perf_counter() - t0
        rc = sh([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests], tree, log)
    finally:
        (tree / m.path).write_text(original)
        if is_c:  # back to the unmutated build (the restored file is newer than the build)
            if not build(tree, [], m.path):
                raise SystemExit(f"mutant {m.name}: the restored tree does not build")
    verdict = {0: "survived", 1: "killed"}.get(rc, f"error (pytest exit {rc})")
    if verdict != "killed":
        tail = "".join(log)[-3000:]
        print(f"--- {m.name}: {verdict}\n{tail}", file=sys.stderr)
    return verdict, time.perf_counter() - t0


def clone(into: Path) -> Path:
    """The committed HEAD in ``into/flowkit``, with ``into/shared`` pointing at the corpus."""
    tree = into / "flowkit"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(tree)], check=True)
    shared = ROOT.parent / "shared"
    if shared.exists():
        os.symlink(shared, into / "shared")
    return tree


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="only these mutants")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", action="store_true", help="print the result as a Markdown table")
    ap.add_argument("--check", action="store_true", help="only check that every snippet is in this checkout once")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.check:
        for m in chosen:
            path = ROOT / m.path
            hits = path.read_text().count(m.find) if path.is_file() else 0
            if hits != 1:
                raise SystemExit(f"mutant {m.name}: snippet found {hits} times in {m.path}: update tools/mutants.py")
        print(f"{len(chosen)} snippets found once each")
        return 0
    if args.list:
        for m in chosen:
            print(f"{m.name:18s} {m.path:32s} {' '.join(m.tests)}\n{'':18s} {m.what}")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="flowkit-mutants-") as tmp:
        tree = clone(Path(tmp))
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout
        for m in chosen:  # every snippet is checked before anything slow runs
            apply(tree, m)
            subprocess.run(["git", "checkout", "-q", "--", m.path], cwd=tree, check=True)
        log: list = []
        if not build(tree, log):
            print("".join(log), file=sys.stderr)
            raise SystemExit("the unmutated tree does not build")
        print(f"mutating {head.strip()} in {tree}", file=sys.stderr)
        for m in chosen:
            verdict, secs = run_one(tree, m)
            results.append((m, verdict, secs))
            print(f"{m.name:18s} {verdict:10s} {secs:6.1f} s  {m.what}", flush=True)
    if args.markdown:
        print("\n| mutant | planted bug | file | tests | result |\n|---|---|---|---|---|")
        for m, verdict, _ in results:
            tests = ", ".join(f"`{Path(t).name}`" for t in m.tests)
            print(f"| {m.name} | {m.what} | `{m.path}` | {tests} | {verdict} |")
    killed = sum(v == "killed" for _, v, _ in results)
    print(f"{killed} of {len(results)} killed", file=sys.stderr)
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
