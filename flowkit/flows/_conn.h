/* One connection's state machine, shared by the kernels of flows/ (_machine.c runs it
 * over key slots, _stream.c over a hash table of open connections).
 *
 * Arithmetic on packet data wraps (two's complement int64) like numpy's: additions,
 * subtractions and multiplications go through uint64_t, since signed overflow is
 * undefined in C and corrupt captures can carry any value.
 */
#ifndef FLOWKIT_CONN_H
#define FLOWKIT_CONN_H

#include "_rules.h"
#include "protocols/_expect.h"
#include "protocols/_identify.h"

static const int64_t FLAG_BITS[8] = {TH_SYN, TH_FIN, TH_RST, TH_ACK, TH_PSH, TH_URG, TH_ECE, TH_CWR};

static inline int64_t add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* Zeek's seq_delta: signed 32-bit difference of two sequence numbers. */
static inline int64_t
sd(int64_t a, int64_t b)
{
    int64_t d = sub(a, b) & 0xFFFFFFFF;
    return d >= 0x80000000LL ? d - 0x100000000LL : d;
}

/* Row `c` of the matrix; the kernel's 2-D arrays are flat row-major buffers. */
#define ROW(c) (C + (Py_ssize_t)(c) * NCOL)
#define HROW(c) (H + (Py_ssize_t)(c) * HMAX)

static inline void
add_hist(uint8_t *H, int64_t *C, int64_t c, int64_t code)
{
    int64_t *r = ROW(c);
    int64_t n = r[F_HLEN];
    if (n < HMAX) {
        HROW(c)[n] = (uint8_t)code;
        r[F_HLEN] = n + 1;
    }
}

/* Zeek's CheckHistory: letter once per role; 1 when it was seen before. */
static inline int
check_hist(uint8_t *H, int64_t *C, int64_t c, int is_orig, int64_t mask, int64_t code)
{
    if (!is_orig) {
        mask <<= 16;
        code += 32; /* lower case */
    }
    int64_t *r = ROW(c);
    if ((r[F_HSEEN] & mask) == 0) {
        r[F_HSEEN] |= mask;
        add_hist(H, C, c, code);
        return 0;
    }
    return 1;
}

/* Zeek's ScaledHistoryEntry: letter at the 1st, 10th, 100th... occurrence. */
static inline void
scaled(uint8_t *H, int64_t *C, int64_t c, int64_t b, int cnt_col, int th_col, int64_t code)
{
    int64_t *r = ROW(c);
    r[b + cnt_col] = add(r[b + cnt_col], 1);
    if (r[b + cnt_col] == r[b + th_col]) {
        add_hist(H, C, c, code);
        r[b + th_col] = mul(r[b + th_col], 10);
    }
}

static void
new_conn(int64_t *C, int64_t *K, const int64_t *key, int64_t n, int64_t slot, int64_t t, int64_t proto,
         int64_t orig_side, int64_t prefix, int64_t active_ns)
{
    int64_t *r = ROW(n);
    memset(r, 0, NCOL * sizeof(int64_t));
    r[F_TS0] = t;
    r[F_TSLAST] = t;
    r[F_TSPKT] = t;
    r[F_CLOSE_DL] = INF;
    r[F_ATT_DL] = INF;
    r[F_ACT_DL] = active_ns > 0 ? add(t, active_ns) : INF;
    r[F_ORIG] = orig_side;
    r[F_PROTO] = proto;
    r[F_PREFIX] = prefix;
    r[F_SLOT] = slot;
    for (int s = 0; s < 2; s++) {
        int64_t *b = r + N_CONN + s * N_SIDE;
        b[S_RXTH] = 1;
        b[S_ZWTH] = 1;
        b[S_GAPTH] = 1;
        b[S_CHKTH] = 1;
        b[S_HSYN] = INF;
        b[S_HFIN] = INF;
        b[S_HRST] = INF;
        b[S_SYNTS] = -1;
        b[S_SYNLAST] = -1;
        b[S_SYNACKTS] = -1;
        b[S_ACKTS] = -1;
    }
    memcpy(K + (Py_ssize_t)n * N_KEY, key, N_KEY * sizeof(int64_t));
}

/* Zeek's IsReuse: does this SYN start a new connection on the same five-tuple? */
static int
is_reuse(const int64_t *r, int64_t flags, int64_t seq)
{
    if ((flags & TH_SYN) == 0)
        return 0;
    int64_t o = N_CONN + r[F_ORIG] * N_SIDE;
    int64_t p = N_CONN + (1 - r[F_ORIG]) * N_SIDE;
    int64_t conn_orig = o;
    if (flags & TH_ACK) {
        if (r[o + S_STATE] != INACTIVE)
            return 0;
        conn_orig = p;
    }
    int closed = r[o + S_DIDCLOSE] != 0 || r[p + S_DIDCLOSE] != 0;
    if (!closed) {
        if (seq == r[conn_orig + S_START])
            return 0;
        if ((flags & TH_ACK) == 0 && r[conn_orig + S_STATE] == SYN_ACK_SENT && r[p + S_STATE] == INACTIVE &&
            seq == r[p + S_START])
            return 0;
    }
    return 1;
}

/* Zeek's ConnectionClosed: mark the side closed; a complete close removes the connection 5 s later. */
static inline void
closed(int64_t *r, int64_t e, int64_t p, int64_t t)
{
    if (r[e + S_DIDCLOSE])
        return;
    r[e + S_DIDCLOSE] = 1;
    if (r[e + S_STATE] == RESET || r[p + S_DIDCLOSE] || r[p + S_STATE] == INACTIVE) {
        r[F_CLOSE_DL] = add(t, CLOSE_DELAY_NS);
        r[F_ATT_DL] = INF; /* CancelTimers */
    }
}

static inline void
set_state(int64_t *r, int64_t e, int64_t st)
{
    r[e + S_PREV] = r[e + S_STATE];
    r[e + S_STATE] = st;
}

/* Zeek's TCPSessionAdapter::Process for one packet of connection `c`. */
/* (Re)start endpoint e's sequence space at `start`: nothing acknowledged yet, last byte at
 * `last_abs` (`last_rel` relative to start). Zeek's TCP_Endpoint::InitStartSeq and friends. */
static inline void
seq_space(int64_t *r, int64_t e, int64_t start, int64_t last_abs, int64_t last_rel)
{
    r[e + S_START] = start;
    r[e + S_ACKABS] = start;
    r[e + S_ACKREL] = 0;
    r[e + S_LASTABS] = last_abs;
    r[e + S_LASTREL] = last_rel;
    r[e + S_RTOP] = 1; /* relative 1: the first byte after the SYN */
    r[e + S_BLK0] = r[e + S_BLK1] = 0;
}

/* Content gaps, after Zeek's TCP_Reassembler: an endpoint's data is delivered in order up to
 * S_RTOP (relative sequence); data beyond it waits (one block [S_BLK0, S_BLK1) here, where
 * Zeek keeps a list: a second hole is merged into the block, which can only undercount).
 * When the peer acknowledges bytes never delivered, they are a content gap: missed_bytes and
 * the scaled g/G letter, counted only while both endpoints are established or cleanly
 * closing, as Zeek (partial connections report none). */
static inline void
data_seen(int64_t *r, int64_t e, int64_t from, int64_t to)
{
    int64_t *top = &r[e + S_RTOP], *b0 = &r[e + S_BLK0], *b1 = &r[e + S_BLK1];
    if (from <= *top) {
        if (to > *top)
            *top = to;
        if (*b1 > *b0 && *b0 <= *top) {
            if (*b1 > *top)
                *top = *b1;
            *b0 = *b1 = 0;
        }
    } else if (*b1 > *b0) {
        if (from < *b0)
            *b0 = from;
        if (to > *b1)
            *b1 = to;
    } else {
        *b0 = from;
        *b1 = to;
    }
}

static inline int
established_or_closing(const int64_t *r, int64_t e)
{
    return r[e + S_STATE] == ESTABLISHED || (r[e + S_STATE] == CLOSED && r[e + S_PREV] == ESTABLISHED);
}

/* The peer p acknowledged endpoint e's data up to relative `upto`. */
static inline void
ack_gap(uint8_t *H, int64_t *C, int64_t c, int64_t e, int64_t p, int64_t upto, int e_is_orig)
{
    int64_t *r = ROW(c);
    if (r[e + S_FINCNT] > 0 && upto > r[e + S_HFIN])
        upto = r[e + S_HFIN]; /* an ACK of the FIN is no data */
    int64_t top = r[e + S_RTOP];
    if (upto <= top)
        return;
    int64_t gap = upto - top, b0 = r[e + S_BLK0], b1 = r[e + S_BLK1];
    if (b1 > b0) {
        int64_t lo = b0 > top ? b0 : top, hi = b1 < upto ? b1 : upto;
        if (hi > lo)
            gap -= hi - lo;
    }
    r[e + S_RTOP] = upto;
    if (b1 > b0 && b0 <= upto) {
        if (b1 > upto)
            r[e + S_RTOP] = b1;
        r[e + S_BLK0] = r[e + S_BLK1] = 0;
    }
    if (gap > 0 && established_or_closing(r, e) && established_or_closing(r, p)) {
        r[e + S_MISSED] = add(r[e + S_MISSED], gap);
        scaled(H, C, c, e, S_GAPCNT, S_GAPTH, e_is_orig ? 'G' : 'g');
    }
}

static void
tcp_packet(int64_t *C, uint8_t *H, int64_t c, int64_t side, int64_t t, int64_t flags, int64_t seq, int64_t ack,
           int64_t win, int64_t plen)
{
    int64_t *r = ROW(c);
    int is_orig = side == r[F_ORIG];
    int64_t e = N_CONN + side * N_SIDE;
    int64_t p = N_CONN + (1 - side) * N_SIDE;
    int syn = (flags & TH_SYN) != 0;
    int fin = (flags & TH_FIN) != 0;
    int rst = (flags & TH_RST) != 0;
    int ackf = (flags & TH_ACK) != 0;

    int64_t seg_len = add(plen, syn + fin);
    if (rst)
        seg_len = sub(seg_len, plen);
    int64_t past = add(seq, seg_len) & 0xFFFFFFFF;

    /* init_endpoint */
    int64_t st = r[e + S_STATE];
    if (st == INACTIVE) {
        if (syn)
            seq_space(r, e, seq, past, sd(past, seq));
        else
            seq_space(r, e, sub(seq, 1) & 0xFFFFFFFF, seq, 1);
        r[e + S_INIT] = 1;
    } else if (syn && (((st == SYN_SENT || st == SYN_ACK_SENT) && seq != r[e + S_START]) || st == ESTABLISHED ||
                       st == PARTIAL || (st == RESET && r[e + S_PREV] == INACTIVE))) {
        seq_space(r, e, seq, past, sd(past, seq));
    }

    int64_t rel_seq = sd(seq, r[e + S_START]);

    /* update_history */
    int bits = syn + fin + rst;
    if (bits > 1) {
        if (fin && rst)
            check_hist(H, C, c, is_orig, H_FINRST, 'I');
        else
            check_hist(H, C, c, is_orig, H_MULTI, 'Q');
    } else if (bits == 1) {
        if (syn) {
            int64_t code = ackf ? 'H' : 'S';
            if (check_hist(H, C, c, is_orig, H_SYN, code) && rel_seq != r[e + S_HSYN])
                add_hist(H, C, c, is_orig ? code : code + 32);
            r[e + S_HSYN] = rel_seq;
        }
        if (fin) {
            if (check_hist(H, C, c, is_orig, H_FIN, 'F') && add(rel_seq, plen) != r[e + S_HFIN])
                add_hist(H, C, c, is_orig ? 'F' : 'f');
            r[e + S_HFIN] = add(rel_seq, plen);
        }
        if (rst) {
            if (check_hist(H, C, c, is_orig, H_RST, 'R') && rel_seq != r[e + S_HRST])
                add_hist(H, C, c, is_orig ? 'R' : 'r');
            r[e + S_HRST] = rel_seq;
        }
    } else {
        if (plen)
            check_hist(H, C, c, is_orig, H_DATA, 'D');
        else if (ackf)
            check_hist(H, C, c, is_orig, H_ACK, 'A');
    }

    /* update_window: zero windows, logarithmically */
    if (win == 0 && !rst && r[p + S_STATE] != CLOSED && r[e + S_STATE] != RESET)
        scaled(H, C, c, e, S_ZWCNT, S_ZWTH, is_orig ? 'W' : 'w');

    if (!(r[e + S_DIDCLOSE] && r[p + S_DIDCLOSE]))
        r[F_TSLAST] = t;

    if (fin)
        r[e + S_FINCNT] = add(r[e + S_FINCNT], 1);

    if (ackf) {
        if (r[p + S_STATE] == INACTIVE) {
            int64_t start = sub(ack, 1) & 0xFFFFFFFF; /* init_peer */
            seq_space(r, p, start, start, 0);
            r[p + S_INIT] = 1;
        } else {
            int underflow = sd(ack, r[p + S_START]) < 0;
            if (!underflow && !rst) {
                int64_t d = sd(ack, r[p + S_ACKABS]);
                if (ack == 0 && d > TOO_LARGE_SEQ_DELTA) {
                } else if (d > 0) {
                    r[p + S_ACKABS] = ack;
                    r[p + S_ACKREL] = add(r[p + S_ACKREL], d);
                }
            }
        }
    }

    if (plen > 0 && !rst)
        data_seen(r, e, add(rel_seq, syn), add(add(rel_seq, syn), plen));
    if (ackf && !rst && r[p + S_INIT])
        ack_gap(H, C, c, p, e, sd(ack, r[p + S_START]), !is_orig);

    /* update_last_seq (uses the state before this packet's transition) */
    int64_t dl = sd(past, r[e + S_LASTABS]);
    if ((syn || rst) && (dl > TOO_LARGE_SEQ_DELTA || dl < -TOO_LARGE_SEQ_DELTA)) {
    } else if (fin && r[e + S_LASTREL] == 1) {
        r[e + S_LASTABS] = past;
        r[e + S_LASTREL] = add(r[e + S_LASTREL], dl);
    } else if (r[e + S_STATE] == RESET) {
    } else if (dl > 0) {
        r[e + S_LASTABS] = past;
        r[e + S_LASTREL] = add(r[e + S_LASTREL], dl);
    } else if (plen > 0) {
        scaled(H, C, c, e, S_RXCNT, S_RXTH, is_orig ? 'T' : 't');
    }

    /* UpdateStateMachine */
    int do_close = 0;
    st = r[e + S_STATE];
    int64_t pst = r[p + S_STATE];
    if (st == INACTIVE) {
        if (syn) {
            if (is_orig) {
                set_state(r, e, ackf ? SYN_ACK_SENT : SYN_SENT);
                if (r[F_ATT_DL] == INF)
                    r[F_ATT_DL] = add(t, ATTEMPT_DELAY_NS);
            } else {
                if (!ackf && pst == SYN_ACK_SENT && seq == r[e + S_START]) {
                    /* SYN/SYN-ACK reversal: flip roles and establish */
                    r[F_ORIG] = side;
                    r[F_FLIPS] = add(r[F_FLIPS], 1);
                    add_hist(H, C, c, '^');
                    set_state(r, p, ESTABLISHED);
                    pst = ESTABLISHED;
                }
                if (pst == SYN_SENT)
                    set_state(r, p, ESTABLISHED);
                set_state(r, e, ESTABLISHED);
            }
        }
        if (fin) {
            set_state(r, e, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(r, e, RESET);
            do_close = 1;
        }
        if (r[e + S_STATE] == INACTIVE) {
            int64_t o = N_CONN + r[F_ORIG] * N_SIDE;
            if (!is_orig && plen == 0 && r[o + S_STATE] == SYN_SENT) {
                /* an ACK of the SYN before the SYN-ACK does not make a partial connection */
            } else if (ackf && r[p + S_STATE] == ESTABLISHED) {
                set_state(r, e, ESTABLISHED);
            } else {
                set_state(r, e, PARTIAL);
            }
        }
    } else if (st == SYN_SENT || st == SYN_ACK_SENT) {
        if (fin) {
            set_state(r, e, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(r, e, RESET);
            do_close = 1;
        }
    } else if (st == ESTABLISHED || st == PARTIAL) {
        if (syn && st == PARTIAL && pst == INACTIVE && !ackf)
            set_state(r, e, SYN_SENT);
        if (fin && !rst) {
            set_state(r, e, CLOSED);
            if (r[p + S_STATE] == RESET && r[p + S_PREV] == CLOSED)
                set_state(r, p, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(r, e, RESET);
            do_close = 1;
        }
    } else if (st == CLOSED) {
        if (rst && r[p + S_STATE] != CLOSED) {
            set_state(r, e, RESET);
            if (!r[e + S_DIDCLOSE])
                do_close = 1;
        }
    }
    if (do_close)
        closed(r, e, p, t);
}

static inline void
count(int64_t *r, int64_t side, int64_t t, int64_t flags, int64_t ip_len, int64_t plen, int64_t proto)
{
    int64_t *b = r + N_CONN + side * N_SIDE;
    b[S_PKTS] = add(b[S_PKTS], 1);
    b[S_IPB] = add(b[S_IPB], ip_len);
    r[F_TSPKT] = t;
    if (proto != 6) {
        b[S_UDPB] = add(b[S_UDPB], plen);
        r[F_TSLAST] = t;
        return;
    }
    for (int k = 0; k < 8; k++)
        if (flags & FLAG_BITS[k])
            b[S_FL + k] = add(b[S_FL + k], 1);
    /* handshake timestamps, per canonical side (the originator is chosen at the end) */
    int64_t *peer = r + N_CONN + (1 - side) * N_SIDE;
    int syn = (flags & TH_SYN) != 0;
    int ack = (flags & TH_ACK) != 0;
    if (syn && !ack) {
        b[S_SYNCNT] = add(b[S_SYNCNT], 1);
        if (b[S_SYNTS] < 0)
            b[S_SYNTS] = t;
        if (peer[S_SYNACKTS] < 0)
            b[S_SYNLAST] = t;
    } else if (syn && ack) {
        if (b[S_SYNACKTS] < 0)
            b[S_SYNACKTS] = t;
    } else if (ack && peer[S_SYNACKTS] >= 0 && b[S_ACKTS] < 0) {
        b[S_ACKTS] = t;
    }
}

/* Does packet (t, proto, flags, seq) start a new connection instead of joining row r?
 * Sets *keep_orig to the predecessor's originator when an active timeout cut it. */
static inline int
starts_new(const int64_t *r, int64_t t, int64_t proto, int64_t flags, int64_t seq, int64_t tcp_ns, int64_t udp_ns,
           int64_t *keep_orig)
{
    int64_t timeout = timeout_of(proto, tcp_ns, udp_ns);
    int fresh = 0;
    if (sub(t, r[F_TSPKT]) >= timeout || t >= r[F_CLOSE_DL] || t >= r[F_ACT_DL]) {
        fresh = 1;
    } else if (t >= r[F_ATT_DL]) {
        int64_t o = N_CONN + r[F_ORIG] * N_SIDE;
        int64_t q = N_CONN + (1 - r[F_ORIG]) * N_SIDE;
        if ((r[o + S_STATE] == SYN_SENT || r[o + S_STATE] == SYN_ACK_SENT) && r[q + S_STATE] == INACTIVE)
            fresh = 1;
    }
    if (!fresh && proto == 6 && is_reuse(r, flags, seq))
        fresh = 1;
    *keep_orig = -1;
    if (fresh && t >= r[F_ACT_DL] && sub(t, r[F_TSPKT]) < timeout && t < r[F_CLOSE_DL])
        *keep_orig = r[F_ORIG];
    return fresh;
}

/* Deadline of open row r: from then on a packet on its key starts a new connection (the
 * time rules of starts_new above) and takes nothing from it; rows past it are finished
 * by eviction (or, spilled, need no replay), so it must not depend on when that runs. */
static inline int64_t
deadline(const int64_t *r, int64_t tcp_ns, int64_t udp_ns)
{
    int64_t dl = add(r[F_TSPKT], timeout_of(r[F_PROTO], tcp_ns, udp_ns));
    if (r[F_CLOSE_DL] < dl)
        dl = r[F_CLOSE_DL];
    /* cut by the active timeout before that: the next connection on the key inherits the
     * originator until then (starts_new's keep_orig), so the row stays at hand */
    if (r[F_ACT_DL] < dl)
        return dl;
    int64_t ost = r[N_CONN + r[F_ORIG] * N_SIDE + S_STATE], rst = r[N_CONN + (1 - r[F_ORIG]) * N_SIDE + S_STATE];
    if ((ost == SYN_SENT || ost == SYN_ACK_SENT) && rst == INACTIVE && r[F_ATT_DL] < dl)
        dl = r[F_ATT_DL];
    return dl;
}

/* Open connection `n` for a packet: orientation, row, the '^' of a flip. */
static inline void
open_conn(int64_t *C, uint8_t *H, int64_t *K, const int64_t *key, int64_t n, int64_t slot, int64_t t,
          int64_t side, int64_t proto, int64_t flags, int64_t keep_orig, int64_t prefix, int64_t active_ns)
{
    int flip = flips(key, side, proto, flags);
    int64_t orig = flip ? 1 - side : side;
    if (keep_orig >= 0) {
        orig = keep_orig;
        flip = 0;
    }
    new_conn(C, K, key, n, slot, t, proto, orig, prefix, active_ns);
    memset(HROW(n), 0, HMAX); /* a reused row must not keep its old letters */
    if (flip) {
        ROW(n)[F_FLIPS] = 1;
        add_hist(H, C, n, '^');
    }
}

/* Zeek (since 5.1, PR #2191) flips a connection that began with an unflipped SYN-ACK when
 * the packet right after it, in either direction, is an ACK or carries data: a stealth
 * scan's SYN-ACK draws a RST or nothing. The history then reads as if the flip had come
 * first (Zeek's logs show "^h..."): letters change role, '^' leads. */
static inline int
late_flip(const int64_t *r, int64_t flags, int64_t plen)
{
    const int64_t *o = r + N_CONN + r[F_ORIG] * N_SIDE, *q = r + N_CONN + (1 - r[F_ORIG]) * N_SIDE;
    if (r[F_FLIPS] != 0 || add(o[S_PKTS], q[S_PKTS]) != 1 || o[S_STATE] != SYN_ACK_SENT || q[S_STATE] != INACTIVE)
        return 0;
    int ack_only = (flags & TH_ACK) != 0 && (flags & (TH_SYN | TH_RST)) == 0;
    return ack_only || plen > 0;
}

static inline void
flip_late(uint8_t *H, int64_t *C, int64_t c)
{
    int64_t *r = ROW(c);
    uint8_t *h = HROW(c);
    int64_t n = r[F_HLEN] < HMAX ? r[F_HLEN] : HMAX - 1;
    for (int64_t i = n; i > 0; i--) {
        uint8_t x = h[i - 1];
        h[i] = (x >= 'A' && x <= 'Z') ? x + 32 : (x >= 'a' && x <= 'z') ? x - 32 : x;
    }
    h[0] = '^';
    r[F_HLEN] = n + 1;
    r[F_HSEEN] = ((r[F_HSEEN] & 0xFFFF) << 16) | ((r[F_HSEEN] >> 16) & 0xFFFF);
    r[F_ORIG] = 1 - r[F_ORIG];
    r[F_FLIPS] = 1;
}

/* A packet whose transport checksum is wrong (verify_checksums), as Zeek without -C: its
 * connection exists (the packet may have opened it) but the packet is not counted and moves
 * no state or time; TCP and UDP add the scaled C/c letter (TCP_Endpoint::ChecksumError,
 * UDPSessionAdapter::HandleBadChecksum), ICMP nothing (ICMPAnalyzer::DeliverPacket). */
static inline void
checksum_error(uint8_t *H, int64_t *C, int64_t c, int64_t side, int64_t proto)
{
    if (proto != 6 && proto != 17)
        return;
    int is_orig = side == ROW(c)[F_ORIG];
    scaled(H, C, c, N_CONN + side * N_SIDE, S_CHKCNT, S_CHKTH, is_orig ? 'C' : 'c');
}

/* Does an ICMP error quoting this connection's five-tuple at time t report on open row r?
 * Only while a packet at t would still join it (the time rules of starts_new). */
static inline int
reports_on(const int64_t *r, int64_t t, int64_t tcp_ns, int64_t udp_ns)
{
    return t < deadline(r, tcp_ns, udp_ns);
}

/* An ICMP error (type, code, sender) quoting connection c's five-tuple: counted, the last
 * one kept. The quote is no packet of the connection: nothing else changes. */
static inline void
icmp_report(int64_t *C, int64_t c, const flow_pkt_t *f)
{
    int64_t *r = ROW(c);
    r[F_ERRS] = add(r[F_ERRS], 1);
    r[F_ETYPE] = f->etype;
    r[F_ECODE] = f->ecode;
    r[F_ESRCHI] = f->ehi;
    r[F_ESRCLO] = f->elo;
}

/* Tunnels (the links come from _rules.h's tunnel_links): a packet that carried a flow packet
 * marks its connection a tunnel parent; a packet that came through a tunnel adds its
 * parent's key to the connection's parent slots (a new key in the first free slot, at most
 * N_PAR keys, later ones dropped; a known key widens its first/last time). Times, not the
 * parent's row: the row may be open elsewhere (another part, on disk), so the slots are
 * resolved to the parents' flow_ids once every row is final (flows/parents.py). */
static inline void
tunnel_packet(int64_t *C, int64_t c, int64_t t, uint64_t parent, int64_t encloses)
{
    int64_t *r = ROW(c);
    if (encloses)
        r[F_ENCLOSES] = 1;
    if (!parent)
        return;
    for (int j = 0; j < N_PAR; j++) {
        int64_t *s = r + F_PAR + j * PAR_WIDTH;
        if (s[P_KEY] == (int64_t)parent) {
            if (t < s[P_FIRST])
                s[P_FIRST] = t;
            if (t > s[P_LAST])
                s[P_LAST] = t;
            return;
        }
        if (s[P_KEY] == 0) {
            s[P_KEY] = (int64_t)parent;
            s[P_FIRST] = s[P_LAST] = t;
            return;
        }
    }
}

/* One packet of connection c: counters, then Zeek's TCP or UDP logic. */
static inline void
feed(int64_t *C, uint8_t *H, int64_t c, int64_t side, int64_t t, int64_t flags, int64_t seq, int64_t ack,
     int64_t win, int64_t plen, int64_t iplen, int64_t proto, int64_t kind)
{
    int64_t *r = ROW(c);
    if (kind == PK_BAD_CHECKSUM) {
        checksum_error(H, C, c, side, proto);
        return;
    }
    if (proto == 6 && late_flip(r, flags, plen))
        flip_late(H, C, c);
    count(r, side, t, flags, iplen, plen, proto);
    if (proto == 6) {
        tcp_packet(C, H, c, side, t, flags, seq, ack, win, plen);
    } else {
        r[N_CONN + side * N_SIDE + S_STATE] = PARTIAL; /* UDP_ACTIVE; ICMP and others: active */
        if (proto == 17)
            check_hist(H, C, c, side == r[F_ORIG], H_DATA, 'D'); /* Zeek writes no history for the others */
    }
}

/* Address words of a connection's side (0/1: canonical sides of its key). */
static inline void
side_address(const int64_t *key, int64_t s, int64_t *hi, int64_t *lo)
{
    *hi = key[s ? K_BHI : K_AHI];
    *lo = key[s ? K_BLO : K_ALO];
}

/* Service identification for one packet of connection c (after feed: the roles are
 * current): its captured payload pl[0..n) through the rules of protocols/_identify.h,
 * until they say nothing more can be learnt. A data connection announced on a control
 * channel goes to the expectation table E (NULL: none kept). */
static __attribute__((noinline)) void
identify_slow(int64_t *C, const int64_t *K, int64_t c, int64_t side, int64_t t, int64_t proto, const uint8_t *pl,
              int64_t n, int64_t *E)
{
    int64_t *r = ROW(c);
    int partial = proto == 6 && r[N_CONN + S_SYNCNT] == 0 && r[N_CONN + N_SIDE + S_SYNCNT] == 0 &&
                  r[N_CONN + S_SYNACKTS] < 0 && r[N_CONN + N_SIDE + S_SYNACKTS] < 0; /* no SYN seen */
    svc_t s = {(uint64_t)r[F_SVC], (uint64_t)r[F_SVCN]};
    svc_expect_t ex;
    svc_packet(&s, pl, n, side == r[F_ORIG], proto == 6, partial, (char *)(r + F_NAME), NAME_WORDS * 8, &ex);
    r[F_SVC] = (int64_t)s.bits;
    r[F_SVCN] = (int64_t)s.count | (svc_settled(&s) ? INT64_MIN : 0);
    if (ex.service >= 0 && E) {
        int64_t hi, lo;
        if (ex.has_addr) {
            hi = (int64_t)be64(ex.addr);
            lo = (int64_t)be64(ex.addr + 8);
        } else {
            int64_t orig = r[F_ORIG];
            side_address(K + (Py_ssize_t)c * N_KEY, ex.peer ? 1 - orig : orig, &hi, &lo);
        }
        expect_add(E, hi, lo, ex.port, ex.service, t);
    }
}

/* Where each packet's captured transport payload is (decode/payload.py): bytes start[i]
 * .. + caplen[i] of the batch's data; zero rows when the batch came without payload. */
typedef struct {
    int64_t *start;
    uint32_t *caplen;
} payload_cols_t;

static const column_t PAYLOAD_COLUMNS[] = {
    {"start", "l", 1, offsetof(payload_cols_t, start), 0}, {"caplen", "I", 1, offsetof(payload_cols_t, caplen), 0},
};
#define N_PAYLOAD_COLUMNS 2

/* The payload arguments of a kernel: PAYLOAD_COLUMNS (zero rows, or one per packet of the
 * n_pkts) and the bytes they point into. */
static int
bind_payload(views_t *vs, PyObject *opl, PyObject *odata, Py_ssize_t n_pkts, payload_cols_t *pl, Py_ssize_t *n_pl,
             const uint8_t **data, Py_ssize_t *n_data)
{
    *n_pl = -1;
    if (!bind_columns(vs, opl, PAYLOAD_COLUMNS, N_PAYLOAD_COLUMNS, pl, n_pl, "payload") ||
        !(*data = view_of(vs, odata, "B", 0, "data", n_data)))
        return 0;
    if (*n_pl != 0 && *n_pl != n_pkts) {
        PyErr_Format(PyExc_ValueError, "payload: %zd rows for %zd packets", *n_pl, n_pkts);
        return 0;
    }
    return 1;
}

/* The packet loops' entry, for a packet of connection c whose payload is data[at..at+n):
 * TCP and UDP payload only (Zeek names no service for ICMP or other protocols), within the
 * data, until settled (the sign bit of F_SVCN); out of line past these cheap tests, so the
 * loops stay small. */
static inline void
identify(int64_t *C, const int64_t *K, int64_t c, int64_t side, int64_t t, int64_t proto, int64_t at, int64_t n,
         const uint8_t *data, Py_ssize_t n_data, int64_t *E)
{
    if (n > 0 && ROW(c)[F_SVCN] >= 0 && (proto == 6 || proto == 17) && at >= 0 && at + n <= n_data)
        identify_slow(C, K, c, side, t, proto, data + at, n, E);
}

/* Whether open connection row r may still announce a data connection (FTP PORT/PASV, IRC
 * DCC): it is a control channel or shows the start of one (SVC_ANNOUNCER). The one-pass
 * driver keeps these in memory past its budget, so their announcements come in time; those
 * a spilled connection makes at its replay are applied afterwards (flows/expected.py). */
static inline int
may_announce(const int64_t *r)
{
    return ((uint64_t)r[F_SVC] & SVC_ANNOUNCER) != 0;
}

/* A new TCP connection announced on a control channel (FTP data, IRC DCC) is named by
 * the announcement, as Zeek names a scheduled analyzer's connection. */
static inline void
expected(int64_t *C, const int64_t *K, int64_t c, int64_t t, int64_t *E)
{
    int64_t *r = ROW(c);
    if (!E || E[0] == 0 || r[F_PROTO] != 6)
        return;
    const int64_t *key = K + (Py_ssize_t)c * N_KEY;
    int64_t resp = 1 - r[F_ORIG], hi, lo;
    side_address(key, resp, &hi, &lo);
    int64_t service = expect_take(E, hi, lo, key[resp ? K_BPORT : K_APORT], t);
    if (service >= 0) {
        r[F_SVC] |= (int64_t)1 << service;
        r[F_SVCN] |= INT64_MIN; /* named by the announcement: nothing to read */
    }
}

/* The expectation table argument: int64, (1 + EXPECT_CAP) rows of EXPECT_WIDTH. */
static int
bind_expect(views_t *vs, PyObject *o, int64_t **E)
{
    Py_ssize_t n;
    if (!(*E = view_of(vs, o, "l", 1, "expect", &n)))
        return 0;
    if (n != (1 + EXPECT_CAP) * EXPECT_WIDTH || (*E)[0] < 0 || (*E)[0] > EXPECT_CAP) {
        PyErr_Format(PyExc_ValueError, "expect: %zd items, expected %d rows of %d with a count in row 0", n,
                     1 + EXPECT_CAP, EXPECT_WIDTH);
        return 0;
    }
    return 1;
}

#endif
