"""The per-connection TCP/UDP state machine (numba), following Zeek's session logic.

Why numba and not numpy: whether a packet opens a new connection depends on the
state its predecessors left (close, reset, SYN reuse, timers), and Zeek's history
letters depend on per-endpoint sequence bookkeeping. That is an inherently
sequential scan; it runs once over the packets in capture order, touching only
fixed-size per-connection rows (no Python object per packet).

A connection is one row of the int64 matrix ``C`` (columns below) plus a row of the
uint8 history matrix ``H``. Endpoints are stored by *canonical side* (0 = the
smaller (address, port), 1 = the other); ``C[F_ORIG]`` says which side is the
originator, so a role flip is one toggle. Sources for every rule: Zeek's
``TCPSessionAdapter.cc`` (Process, UpdateStateMachine, IsReuse, ConnectionClosed),
``TCP_Endpoint::Size``, ``Conn.cc`` and ``conn/main.zeek``; see docs/semantics.md.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from flowkit.capture import _jit

_jit.start()  # before any kernel loads: skips numba's SciPy import (see _jit)

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


@nb.njit(cache=True, inline="always")
def _sd(a, b):
    """Zeek's seq_delta: signed 32-bit difference of two sequence numbers."""
    d = (a - b) & 0xFFFFFFFF
    if d >= 0x80000000:
        d -= 0x100000000
    return d


@nb.njit(cache=True)
def _add_hist(H, C, c, code):
    n = C[c, F_HLEN]
    if n < HMAX:
        H[c, n] = code
        C[c, F_HLEN] = n + 1


@nb.njit(cache=True)
def _check_hist(H, C, c, is_orig, mask, code):
    """Zeek's CheckHistory: letter once per role; True when it was seen before."""
    if not is_orig:
        mask = mask << 16
        code = code + 32  # lower case
    if (C[c, F_HSEEN] & mask) == 0:
        C[c, F_HSEEN] |= mask
        _add_hist(H, C, c, code)
        return False
    return True


@nb.njit(cache=True)
def _scaled(H, C, c, b, cnt_col, th_col, code):
    """Zeek's ScaledHistoryEntry: letter at the 1st, 10th, 100th... occurrence."""
    C[c, b + cnt_col] += 1
    if C[c, b + cnt_col] == C[c, b + th_col]:
        _add_hist(H, C, c, code)
        C[c, b + th_col] *= 10


@nb.njit(cache=True)
def _new_conn(C, H, K, SK, n, slot, t, proto, orig_side, prefix, active_ns):
    for j in range(NCOL):
        C[n, j] = 0
    C[n, F_TS0] = t
    C[n, F_TSLAST] = t
    C[n, F_TSPKT] = t
    C[n, F_CLOSE_DL] = INF
    C[n, F_ATT_DL] = INF
    C[n, F_ACT_DL] = t + active_ns if active_ns > 0 else INF
    C[n, F_ORIG] = orig_side
    C[n, F_PROTO] = proto
    C[n, F_PREFIX] = prefix
    C[n, F_SLOT] = slot
    for s in range(2):
        b = N_CONN + s * N_SIDE
        C[n, b + S_RXTH] = 1
        C[n, b + S_ZWTH] = 1
        C[n, b + S_HSYN] = INF
        C[n, b + S_HFIN] = INF
        C[n, b + S_HRST] = INF
        C[n, b + S_SYNTS] = -1
        C[n, b + S_SYNLAST] = -1
        C[n, b + S_SYNACKTS] = -1
        C[n, b + S_ACKTS] = -1
    for j in range(K.shape[1]):
        K[n, j] = SK[slot, j]


@nb.njit(cache=True)
def _is_reuse(C, c, flags, seq):
    """Zeek's IsReuse: does this SYN start a new connection on the same five-tuple?"""
    if (flags & TH_SYN) == 0:
        return False
    o = N_CONN + C[c, F_ORIG] * N_SIDE
    r = N_CONN + (1 - C[c, F_ORIG]) * N_SIDE
    conn_orig = o
    if flags & TH_ACK:
        if C[c, o + S_STATE] != INACTIVE:
            return False
        conn_orig = r
    closed = C[c, o + S_DIDCLOSE] != 0 or C[c, r + S_DIDCLOSE] != 0
    if not closed:
        if seq == C[c, conn_orig + S_START]:
            return False
        if (
            (flags & TH_ACK) == 0
            and C[c, conn_orig + S_STATE] == SYN_ACK_SENT
            and C[c, r + S_STATE] == INACTIVE
            and seq == C[c, r + S_START]
        ):
            return False
    return True


@nb.njit(cache=True)
def _closed(C, c, e, p, t):
    """Zeek's ConnectionClosed: mark the side closed; a complete close removes the connection 5 s later."""
    if C[c, e + S_DIDCLOSE]:
        return
    C[c, e + S_DIDCLOSE] = 1
    if C[c, e + S_STATE] == RESET or C[c, p + S_DIDCLOSE] or C[c, p + S_STATE] == INACTIVE:
        C[c, F_CLOSE_DL] = t + CLOSE_DELAY_NS
        C[c, F_ATT_DL] = INF  # CancelTimers


@nb.njit(cache=True)
def _set_state(C, c, e, st):
    C[c, e + S_PREV] = C[c, e + S_STATE]
    C[c, e + S_STATE] = st


@nb.njit(cache=True)
def _tcp_packet(C, H, c, side, t, flags, seq, ack, win, plen):
    """Zeek's TCPSessionAdapter::Process for one packet of connection ``c``."""
    is_orig = side == C[c, F_ORIG]
    e = N_CONN + side * N_SIDE
    p = N_CONN + (1 - side) * N_SIDE
    syn = (flags & TH_SYN) != 0
    fin = (flags & TH_FIN) != 0
    rst = (flags & TH_RST) != 0
    ackf = (flags & TH_ACK) != 0

    seg_len = plen + (1 if syn else 0) + (1 if fin else 0)
    if rst:
        seg_len -= plen
    past = (seq + seg_len) & 0xFFFFFFFF

    # init_endpoint
    st = C[c, e + S_STATE]
    if st == INACTIVE:
        if syn:
            C[c, e + S_START] = seq
            C[c, e + S_ACKABS] = seq
            C[c, e + S_ACKREL] = 0
            C[c, e + S_LASTABS] = past
            C[c, e + S_LASTREL] = _sd(past, seq)
        else:
            start = (seq - 1) & 0xFFFFFFFF
            C[c, e + S_START] = start
            C[c, e + S_ACKABS] = start
            C[c, e + S_ACKREL] = 0
            C[c, e + S_LASTABS] = seq
            C[c, e + S_LASTREL] = 1
        C[c, e + S_INIT] = 1
    elif syn and (
        ((st == SYN_SENT or st == SYN_ACK_SENT) and seq != C[c, e + S_START])
        or st == ESTABLISHED
        or st == PARTIAL
        or (st == RESET and C[c, e + S_PREV] == INACTIVE)
    ):
        C[c, e + S_START] = seq
        C[c, e + S_ACKABS] = seq
        C[c, e + S_ACKREL] = 0
        C[c, e + S_LASTABS] = past
        C[c, e + S_LASTREL] = _sd(past, seq)

    rel_seq = _sd(seq, C[c, e + S_START])

    # update_history
    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            _check_hist(H, C, c, is_orig, H_FINRST, 73)  # I
        else:
            _check_hist(H, C, c, is_orig, H_MULTI, 81)  # Q
    elif bits == 1:
        if syn:
            code = 72 if ackf else 83  # H / S
            if _check_hist(H, C, c, is_orig, H_SYN, code) and rel_seq != C[c, e + S_HSYN]:
                _add_hist(H, C, c, code if is_orig else code + 32)
            C[c, e + S_HSYN] = rel_seq
        if fin:
            if _check_hist(H, C, c, is_orig, H_FIN, 70) and rel_seq + plen != C[c, e + S_HFIN]:
                _add_hist(H, C, c, 70 if is_orig else 102)
            C[c, e + S_HFIN] = rel_seq + plen
        if rst:
            if _check_hist(H, C, c, is_orig, H_RST, 82) and rel_seq != C[c, e + S_HRST]:
                _add_hist(H, C, c, 82 if is_orig else 114)
            C[c, e + S_HRST] = rel_seq
    else:
        if plen:
            _check_hist(H, C, c, is_orig, H_DATA, 68)  # D
        elif ackf:
            _check_hist(H, C, c, is_orig, H_ACK, 65)  # A

    # update_window: zero windows, logarithmically
    if win == 0 and not rst and C[c, p + S_STATE] != CLOSED and C[c, e + S_STATE] != RESET:
        _scaled(H, C, c, e, S_ZWCNT, S_ZWTH, 87 if is_orig else 119)  # W

    if not (C[c, e + S_DIDCLOSE] and C[c, p + S_DIDCLOSE]):
        C[c, F_TSLAST] = t

    if fin:
        C[c, e + S_FINCNT] += 1

    if ackf:
        if C[c, p + S_STATE] == INACTIVE:
            start = (ack - 1) & 0xFFFFFFFF  # init_peer
            C[c, p + S_START] = start
            C[c, p + S_ACKABS] = start
            C[c, p + S_ACKREL] = 0
            C[c, p + S_LASTABS] = start
            C[c, p + S_LASTREL] = 0
            C[c, p + S_INIT] = 1
        else:
            underflow = _sd(ack, C[c, p + S_START]) < 0
            if not underflow and not rst:
                d = _sd(ack, C[c, p + S_ACKABS])
                if ack == 0 and d > TOO_LARGE_SEQ_DELTA:
                    pass
                elif d > 0:
                    C[c, p + S_ACKABS] = ack
                    C[c, p + S_ACKREL] += d

    # update_last_seq (uses the state before this packet's transition)
    dl = _sd(past, C[c, e + S_LASTABS])
    if (syn or rst) and (dl > TOO_LARGE_SEQ_DELTA or dl < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and C[c, e + S_LASTREL] == 1:
        C[c, e + S_LASTABS] = past
        C[c, e + S_LASTREL] += dl
    elif C[c, e + S_STATE] == RESET:
        pass
    elif dl > 0:
        C[c, e + S_LASTABS] = past
        C[c, e + S_LASTREL] += dl
    elif plen > 0:
        _scaled(H, C, c, e, S_RXCNT, S_RXTH, 84 if is_orig else 116)  # T

    # UpdateStateMachine
    do_close = False
    st = C[c, e + S_STATE]
    pst = C[c, p + S_STATE]
    if st == INACTIVE:
        if syn:
            if is_orig:
                _set_state(C, c, e, SYN_ACK_SENT if ackf else SYN_SENT)
                if C[c, F_ATT_DL] == INF:
                    C[c, F_ATT_DL] = t + ATTEMPT_DELAY_NS
            else:
                if (not ackf) and pst == SYN_ACK_SENT and seq == C[c, e + S_START]:
                    # SYN/SYN-ACK reversal: flip roles and establish
                    C[c, F_ORIG] = side
                    C[c, F_FLIPS] += 1
                    _add_hist(H, C, c, 94)  # ^
                    _set_state(C, c, p, ESTABLISHED)
                    pst = ESTABLISHED
                if pst == SYN_SENT:
                    _set_state(C, c, p, ESTABLISHED)
                _set_state(C, c, e, ESTABLISHED)
        if fin:
            _set_state(C, c, e, CLOSED)
            do_close = True
        if rst:
            _set_state(C, c, e, RESET)
            do_close = True
        if C[c, e + S_STATE] == INACTIVE:
            o = N_CONN + C[c, F_ORIG] * N_SIDE
            if (not is_orig) and plen == 0 and C[c, o + S_STATE] == SYN_SENT:
                pass  # an ACK of the SYN before the SYN-ACK does not make a partial connection
            elif ackf and C[c, p + S_STATE] == ESTABLISHED:
                _set_state(C, c, e, ESTABLISHED)
            else:
                _set_state(C, c, e, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(C, c, e, CLOSED)
            do_close = True
        if rst:
            _set_state(C, c, e, RESET)
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn and st == PARTIAL and pst == INACTIVE and not ackf:
            _set_state(C, c, e, SYN_SENT)
        if fin and not rst:
            _set_state(C, c, e, CLOSED)
            if C[c, p + S_STATE] == RESET and C[c, p + S_PREV] == CLOSED:
                _set_state(C, c, p, CLOSED)
            do_close = True
        if rst:
            _set_state(C, c, e, RESET)
            do_close = True
    elif st == CLOSED:
        if rst and C[c, p + S_STATE] != CLOSED:
            _set_state(C, c, e, RESET)
            if not C[c, e + S_DIDCLOSE]:
                do_close = True
    if do_close:
        _closed(C, c, e, p, t)


@nb.njit(cache=True)
def _count(C, c, side, t, flags, ip_len, plen, proto):
    b = N_CONN + side * N_SIDE
    C[c, b + S_PKTS] += 1
    C[c, b + S_IPB] += ip_len
    C[c, F_TSPKT] = t
    if proto == 17:
        C[c, b + S_UDPB] += plen
        C[c, F_TSLAST] = t
        return
    for k in range(8):
        bit = (TH_SYN, TH_FIN, TH_RST, TH_ACK, TH_PSH, TH_URG, TH_ECE, TH_CWR)[k]
        if flags & bit:
            C[c, b + S_FL + k] += 1
    # handshake timestamps, per canonical side (the originator is chosen at the end)
    peer = N_CONN + (1 - side) * N_SIDE
    syn = (flags & TH_SYN) != 0
    ack = (flags & TH_ACK) != 0
    if syn and not ack:
        C[c, b + S_SYNCNT] += 1
        if C[c, b + S_SYNTS] < 0:
            C[c, b + S_SYNTS] = t
        if C[c, peer + S_SYNACKTS] < 0:
            C[c, b + S_SYNLAST] = t
    elif syn and ack:
        if C[c, b + S_SYNACKTS] < 0:
            C[c, b + S_SYNACKTS] = t
    elif ack and C[c, peer + S_SYNACKTS] >= 0 and C[c, b + S_ACKTS] < 0:
        C[c, b + S_ACKTS] = t


@nb.njit(cache=True)
def advance(
    C, H, K, n_conn, slot_conn, SK, slot_likely,
    p_ts, p_slot, p_side, p_flags, p_seq, p_ack, p_win, p_plen, p_iplen, p_proto, p_prefix,
    tcp_ns, udp_ns, active_ns, done_mask,
):
    """Run packets (capture order) through the connections; returns the new connection count.

    ``slot_conn[k]`` is the open connection of key slot k (-1 when none); a connection
    that another one replaces on the same key is marked in ``done_mask``. Returns -1
    when ``C`` is full (the caller grows it and runs again from the same input).
    """
    cap = C.shape[0]
    for i in range(p_ts.shape[0]):
        t = p_ts[i]
        k = p_slot[i]
        side = p_side[i]
        flags = np.int64(p_flags[i])
        seq = np.int64(p_seq[i])
        proto = np.int64(p_proto[i])
        c = slot_conn[k]
        fresh = c < 0
        keep_orig = -1  # an active-timeout continuation keeps its predecessor's orientation
        if not fresh:
            timeout = tcp_ns if proto == 6 else udp_ns
            if (
                t - C[c, F_TSPKT] >= timeout
                or t >= C[c, F_CLOSE_DL]
                or t >= C[c, F_ACT_DL]
            ):
                fresh = True
            elif t >= C[c, F_ATT_DL]:
                o = N_CONN + C[c, F_ORIG] * N_SIDE
                r = N_CONN + (1 - C[c, F_ORIG]) * N_SIDE
                if (C[c, o + S_STATE] == SYN_SENT or C[c, o + S_STATE] == SYN_ACK_SENT) and C[c, r + S_STATE] == INACTIVE:
                    fresh = True
            if not fresh and proto == 6 and _is_reuse(C, c, flags, seq):
                fresh = True
            if fresh:
                done_mask[c] = True
                if t >= C[c, F_ACT_DL] and t - C[c, F_TSPKT] < timeout and t < C[c, F_CLOSE_DL]:
                    keep_orig = C[c, F_ORIG]
        if fresh:
            if n_conn >= cap:
                return -1
            # orientation: the sender of a SYN without ACK originates; otherwise
            # Zeek's likely-server-port heuristic (WantConnection)
            src_likely = slot_likely[k, side]
            dst_likely = slot_likely[k, 1 - side]
            if slot_likely[k, 3 - side]:
                src_likely = False  # never flip traffic sent to a broadcast/multicast address
            flip = False
            if proto == 6:
                if (flags & TH_SYN) != 0 and (flags & TH_ACK) != 0:
                    flip = True  # a SYN-ACK comes from the responder (Zeek's baselines flip it)
                elif (flags & TH_SYN) == 0:
                    if src_likely:
                        if dst_likely:
                            flip = (flags & TH_SYN) == 0 and SK[k, 5 + side] < SK[k, 6 - side]
                        else:
                            flip = True
            else:
                flip = src_likely and not dst_likely
            orig = 1 - side if flip else side
            if keep_orig >= 0:
                orig = keep_orig
                flip = False
            _new_conn(C, H, K, SK, n_conn, k, t, proto, orig, p_prefix[i], active_ns)
            if flip:
                C[n_conn, F_FLIPS] = 1
                _add_hist(H, C, n_conn, 94)
            c = n_conn
            slot_conn[k] = c
            n_conn += 1
        _count(C, c, side, t, flags, np.int64(p_iplen[i]), np.int64(p_plen[i]), proto)
        if proto == 6:
            _tcp_packet(C, H, c, side, t, flags, seq, np.int64(p_ack[i]), np.int64(p_win[i]), np.int64(p_plen[i]))
        else:
            b = N_CONN + side * N_SIDE
            C[c, b + S_STATE] = PARTIAL  # UDP_ACTIVE
            _check_hist(H, C, c, side == C[c, F_ORIG], H_DATA, 68)
    return n_conn
