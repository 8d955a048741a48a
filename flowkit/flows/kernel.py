"""The per-connection TCP/UDP state machine, following Zeek's session logic.

The machine itself is the C extension ``_machine.c``; this module is the Python home
of its layout and constants (state.py and rows.py read rows through them).

Why a compiled loop and not numpy: whether a packet opens a new connection depends on
the state its predecessors left (close, reset, SYN reuse, timers), and Zeek's history
letters depend on per-endpoint sequence bookkeeping. That is an inherently
sequential scan; it runs once over the packets in capture order, touching only
fixed-size per-connection rows (no Python object per packet). It is C rather than a
JIT so that importing flowkit costs no compiler start-up.

A connection is one row of the int64 matrix ``C`` (columns below) plus a row of the
uint8 history matrix ``H``. Endpoints are stored by *canonical side* (0 = the
smaller (address, port), 1 = the other); ``C[F_ORIG]`` says which side is the
originator, so a role flip is one toggle. Sources for every rule: Zeek's
``TCPSessionAdapter.cc`` (Process, UpdateStateMachine, IsReuse, ConnectionClosed),
``TCP_Endpoint::Size``, ``Conn.cc`` and ``conn/main.zeek``; see docs/semantics.md.
"""
from __future__ import annotations

import numpy as np

from flowkit.flows import _machine
from flowkit.flows._machine import advance, deadlines  # noqa: F401  (the state machine; see _machine.c)
from flowkit.flows.keys import N_KEY  # noqa: F401  (columns of K and SK, checked below)

INF = np.int64(2**62)
NS_PER_S = 1_000_000_000
HMAX = 48  # history letters kept per connection (Zeek's own strings rarely exceed 20)
TOO_LARGE_SEQ_DELTA = 1048576
CLOSE_DELAY_NS = 5 * NS_PER_S  # tcp_close_delay: a closed connection lingers 5 s
ATTEMPT_DELAY_NS = 5 * NS_PER_S  # tcp_attempt_delay: unanswered SYN attempt expires after 5 s

# endpoint states (Zeek's TCP_ENDPOINT_*), UDP uses INACTIVE/ACTIVE(=PARTIAL slot)
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)

# connection-level columns
F_TS0 = 0  # first packet time (ns)
F_TSLAST = 1  # Zeek's LastTime: not advanced once both sides closed
F_CLOSE_DL = 2  # time the closed connection is removed (tcp_close_delay)
F_ATT_DL = 3  # time an unanswered attempt is removed (tcp_attempt_delay)
F_ORIG = 4  # canonical side of the originator
F_PROTO = 5
F_PREFIX = 6  # 1 when the connection belongs to the part's mergeable prefix (state.py)
F_HLEN = 7
F_HSEEN = 8  # Zeek's hist_seen bits: originator role low 16 bits, responder role high
F_SLOT = 9  # key slot of the chunk being processed
F_TSPKT = 10  # time of the last packet (inactivity and active timeout)
F_ACT_DL = 11  # active-timeout deadline
F_FLIPS = 12
N_CONN = 13

# per-side columns: base + side * N_SIDE
S_PKTS, S_IPB, S_UDPB = 0, 1, 2
S_FL = 3  # 8 flag counters: syn fin rst ack psh urg ece cwr  (3..10)
S_STATE, S_PREV, S_DIDCLOSE = 11, 12, 13
S_START, S_LASTABS, S_LASTREL, S_ACKABS, S_ACKREL = 14, 15, 16, 17, 18
S_FINCNT, S_HSYN, S_HFIN, S_HRST = 19, 20, 21, 22
S_RXCNT, S_RXTH, S_ZWCNT, S_ZWTH = 23, 24, 25, 26
S_SYNTS, S_SYNCNT, S_SYNLAST, S_SYNACKTS, S_ACKTS = 27, 28, 29, 30, 31
S_INIT = 32  # sequence space initialised
N_SIDE = 33
NCOL = N_CONN + 2 * N_SIDE

# hist_seen masks (Zeek's HIST_*), shifted by 16 for the responder role
H_SYN, H_FIN, H_RST, H_FINRST, H_ACK, H_DATA, H_CORRUPT, H_MULTI = 1, 2, 4, 8, 16, 32, 64, 128

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = 1, 2, 4, 8, 16, 32, 64, 128
FLAG_BITS = (TH_SYN, TH_FIN, TH_RST, TH_ACK, TH_PSH, TH_URG, TH_ECE, TH_CWR)


def _check_layout() -> None:
    """The C code hard-codes this layout: refuse to run against a build that disagrees."""
    here = globals()
    wrong = [name for name in dir(_machine) if name.isupper() and here.get(name) != getattr(_machine, name)]
    if wrong:
        raise ImportError(f"flowkit.flows._machine does not match kernel.py ({', '.join(wrong)}); rebuild it")


_check_layout()
