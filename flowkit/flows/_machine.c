/* The per-connection TCP/UDP state machine (kernel.py documents the rules and layout).
 *
 * One sequential scan over the packets in capture order; each packet touches only the
 * fixed-size row of its connection. The layout (_layout.h) must match kernel.py, which
 * checks it against the values this module exports.
 *
 * Arithmetic on packet data wraps (two's complement int64) like numpy's: additions,
 * subtractions and multiplications go through uint64_t, since signed overflow is
 * undefined in C and corrupt captures can carry any value.
 */
#include "_buffers.h"
#include "_layout.h"

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
new_conn(int64_t *C, int64_t *K, const int64_t *SK, int64_t n, int64_t slot, int64_t t, int64_t proto,
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
        b[S_HSYN] = INF;
        b[S_HFIN] = INF;
        b[S_HRST] = INF;
        b[S_SYNTS] = -1;
        b[S_SYNLAST] = -1;
        b[S_SYNACKTS] = -1;
        b[S_ACKTS] = -1;
    }
    memcpy(K + (Py_ssize_t)n * N_KEY, SK + (Py_ssize_t)slot * N_KEY, N_KEY * sizeof(int64_t));
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
        if (syn) {
            r[e + S_START] = seq;
            r[e + S_ACKABS] = seq;
            r[e + S_ACKREL] = 0;
            r[e + S_LASTABS] = past;
            r[e + S_LASTREL] = sd(past, seq);
        } else {
            int64_t start = sub(seq, 1) & 0xFFFFFFFF;
            r[e + S_START] = start;
            r[e + S_ACKABS] = start;
            r[e + S_ACKREL] = 0;
            r[e + S_LASTABS] = seq;
            r[e + S_LASTREL] = 1;
        }
        r[e + S_INIT] = 1;
    } else if (syn && (((st == SYN_SENT || st == SYN_ACK_SENT) && seq != r[e + S_START]) || st == ESTABLISHED ||
                       st == PARTIAL || (st == RESET && r[e + S_PREV] == INACTIVE))) {
        r[e + S_START] = seq;
        r[e + S_ACKABS] = seq;
        r[e + S_ACKREL] = 0;
        r[e + S_LASTABS] = past;
        r[e + S_LASTREL] = sd(past, seq);
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
            r[p + S_START] = start;
            r[p + S_ACKABS] = start;
            r[p + S_ACKREL] = 0;
            r[p + S_LASTABS] = start;
            r[p + S_LASTREL] = 0;
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
    if (proto == 17) {
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

/* Input errors found in the packet loop (raised once the GIL is back). */
enum { OK, BAD_SLOT, BAD_SIDE, BAD_CONN };

typedef struct {
    int64_t *C, *K, *slot_conn;
    uint8_t *H, *done;
    const int64_t *SK;
    const uint8_t *likely;
    const int64_t *ts, *slot, *flags, *seq, *ack, *win, *plen, *iplen, *proto;
    const int8_t *side, *prefix;
    Py_ssize_t cap, n_slots, n_pkts;
    int64_t tcp_ns, udp_ns, active_ns;
} machine_t;

static int64_t
run(const machine_t *m, int64_t n_conn, int *err, Py_ssize_t *at)
{
    int64_t *C = m->C;
    uint8_t *H = m->H;
    for (Py_ssize_t i = 0; i < m->n_pkts; i++) {
        int64_t t = m->ts[i];
        int64_t k = m->slot[i];
        int64_t side = m->side[i];
        int64_t flags = m->flags[i];
        int64_t seq = m->seq[i];
        int64_t proto = m->proto[i];
        if (k < 0 || k >= m->n_slots) {
            *err = BAD_SLOT, *at = i;
            return 0;
        }
        if (side != 0 && side != 1) {
            *err = BAD_SIDE, *at = i;
            return 0;
        }
        int64_t c = m->slot_conn[k];
        if (c >= n_conn) {
            *err = BAD_CONN, *at = i;
            return 0;
        }
        int fresh = c < 0;
        int64_t keep_orig = -1; /* an active-timeout continuation keeps its predecessor's orientation */
        if (!fresh) {
            int64_t *r = ROW(c);
            int64_t timeout = proto == 6 ? m->tcp_ns : m->udp_ns;
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
            if (fresh) {
                m->done[c] = 1;
                if (t >= r[F_ACT_DL] && sub(t, r[F_TSPKT]) < timeout && t < r[F_CLOSE_DL])
                    keep_orig = r[F_ORIG];
            }
        }
        if (fresh) {
            if (n_conn >= m->cap)
                return -1;
            /* orientation: the sender of a SYN without ACK originates; otherwise
             * Zeek's likely-server-port heuristic (WantConnection) */
            const uint8_t *lk = m->likely + k * N_LIKELY;
            int src_likely = lk[side] != 0;
            int dst_likely = lk[1 - side] != 0;
            if (lk[3 - side])
                src_likely = 0; /* never flip traffic sent to a broadcast/multicast address */
            int flip = 0;
            if (proto == 6) {
                if ((flags & TH_SYN) != 0 && (flags & TH_ACK) != 0) {
                    flip = 1; /* a SYN-ACK comes from the responder (Zeek's baselines flip it) */
                } else if ((flags & TH_SYN) == 0) {
                    if (src_likely) {
                        if (dst_likely) {
                            const int64_t *sk = m->SK + k * N_KEY;
                            flip = sk[5 + side] < sk[6 - side];
                        } else {
                            flip = 1;
                        }
                    }
                }
            } else {
                flip = src_likely && !dst_likely;
            }
            int64_t orig = flip ? 1 - side : side;
            if (keep_orig >= 0) {
                orig = keep_orig;
                flip = 0;
            }
            new_conn(C, m->K, m->SK, n_conn, k, t, proto, orig, m->prefix[i], m->active_ns);
            if (flip) {
                ROW(n_conn)[F_FLIPS] = 1;
                add_hist(H, C, n_conn, '^');
            }
            c = n_conn;
            m->slot_conn[k] = c;
            n_conn++;
        }
        int64_t *r = ROW(c);
        count(r, side, t, flags, m->iplen[i], m->plen[i], proto);
        if (proto == 6) {
            tcp_packet(C, H, c, side, t, flags, seq, m->ack[i], m->win[i], m->plen[i]);
        } else {
            r[N_CONN + side * N_SIDE + S_STATE] = PARTIAL; /* UDP_ACTIVE */
            check_hist(H, C, c, side == r[F_ORIG], H_DATA, 'D');
        }
    }
    return n_conn;
}

/* Rows of a flat matrix with `width` columns, or -1 with a ValueError set. */
static Py_ssize_t
rows_of(Py_ssize_t count, Py_ssize_t width, const char *name)
{
    if (count % width) {
        PyErr_Format(PyExc_ValueError, "%s: %zd items is not a whole number of rows of %zd", name, count, width);
        return -1;
    }
    return count / width;
}

static int
same_rows(Py_ssize_t got, Py_ssize_t want, const char *name, const char *other)
{
    if (got != want) {
        PyErr_Format(PyExc_ValueError, "%s: %zd rows, %s has %zd", name, got, other, want);
        return 0;
    }
    return 1;
}

static int
as_int64(PyObject *o, int64_t *out, const char *name)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an int64 integer", name);
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

PyDoc_STRVAR(advance_doc,
"advance(C, H, K, n_conn, slot_conn, SK, slot_likely, p_ts, p_slot, p_side, p_flags, p_seq, p_ack,\n"
"        p_win, p_plen, p_iplen, p_proto, p_prefix, tcp_ns, udp_ns, active_ns, done_mask)\n"
"--\n\n"
"Run packets (capture order) through the connections; returns the new connection count.\n\n"
"C int64 (cap, NCOL), H uint8 (cap, HMAX), K int64 (cap, N_KEY), SK int64 (slots, N_KEY),\n"
"slot_likely bool (slots, 4), slot_conn int64 (slots), done_mask bool (cap); packet columns\n"
"int64 except p_side and p_prefix (int8). ``slot_conn[k]`` is the open connection of key\n"
"slot k (-1 when none); a connection that another one replaces on the same key is marked\n"
"in ``done_mask``. Returns -1 when ``C`` is full (the caller grows it and runs again from\n"
"the same input).");

static PyObject *
advance(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 22) {
        PyErr_Format(PyExc_TypeError, "advance() takes 22 arguments (%zd given)", nargs);
        return NULL;
    }
    views_t vs = {.n = 0};
    machine_t m;
    Py_ssize_t nC, nH, nK, nSK, nL, nsc, ndone, n;
    int64_t n_conn;
    PyObject *result = NULL;

    if (!(m.C = view_of(&vs, args[0], "l", 1, "C", &nC)) || !(m.H = view_of(&vs, args[1], "B", 1, "H", &nH)) ||
        !(m.K = view_of(&vs, args[2], "l", 1, "K", &nK)) || !as_int64(args[3], &n_conn, "n_conn") ||
        !(m.slot_conn = view_of(&vs, args[4], "l", 1, "slot_conn", &nsc)) ||
        !(m.SK = view_of(&vs, args[5], "l", 0, "SK", &nSK)) ||
        !(m.likely = view_of(&vs, args[6], "?", 0, "slot_likely", &nL)))
        goto done;
    const int64_t **cols[] = {&m.ts, &m.slot, NULL, &m.flags, &m.seq, &m.ack, &m.win, &m.plen, &m.iplen, &m.proto};
    static const char *names[] = {"p_ts", "p_slot", "p_side", "p_flags", "p_seq", "p_ack",
                                  "p_win", "p_plen", "p_iplen", "p_proto", "p_prefix"};
    m.n_pkts = -1;
    for (int j = 0; j < 11; j++) {
        Py_ssize_t len;
        void *p;
        if (j == 2 || j == 10) {
            if (!(p = view_of(&vs, args[7 + j], "b", 0, names[j], &len)))
                goto done;
            *(j == 2 ? &m.side : &m.prefix) = p;
        } else {
            if (!(p = view_of(&vs, args[7 + j], "l", 0, names[j], &len)))
                goto done;
            *cols[j] = p;
        }
        if (m.n_pkts < 0) {
            m.n_pkts = len;
        } else if (len != m.n_pkts) {
            PyErr_Format(PyExc_ValueError, "%s: %zd packets, p_ts has %zd", names[j], len, m.n_pkts);
            goto done;
        }
    }
    if (!as_int64(args[18], &m.tcp_ns, "tcp_ns") || !as_int64(args[19], &m.udp_ns, "udp_ns") ||
        !as_int64(args[20], &m.active_ns, "active_ns") ||
        !(m.done = view_of(&vs, args[21], "?", 1, "done_mask", &ndone)))
        goto done;

    if ((m.cap = rows_of(nC, NCOL, "C")) < 0 || (n = rows_of(nH, HMAX, "H")) < 0 || !same_rows(n, m.cap, "H", "C") ||
        (n = rows_of(nK, N_KEY, "K")) < 0 || !same_rows(n, m.cap, "K", "C") || !same_rows(ndone, m.cap, "done_mask", "C") ||
        (m.n_slots = rows_of(nSK, N_KEY, "SK")) < 0 || (n = rows_of(nL, N_LIKELY, "slot_likely")) < 0 ||
        !same_rows(n, m.n_slots, "slot_likely", "SK") || !same_rows(nsc, m.n_slots, "slot_conn", "SK"))
        goto done;
    if (n_conn < 0 || n_conn > m.cap) {
        PyErr_Format(PyExc_ValueError, "n_conn: %lld outside [0, %zd]", (long long)n_conn, m.cap);
        goto done;
    }

    int err = OK;
    Py_ssize_t at = 0;
    int64_t out;
    Py_BEGIN_ALLOW_THREADS
    out = run(&m, n_conn, &err, &at);
    Py_END_ALLOW_THREADS
    if (err == BAD_SLOT)
        PyErr_Format(PyExc_ValueError, "p_slot[%zd]: %lld is not a key slot of SK", at, (long long)m.slot[at]);
    else if (err == BAD_SIDE)
        PyErr_Format(PyExc_ValueError, "p_side[%zd]: %d is not 0 or 1", at, (int)m.side[at]);
    else if (err == BAD_CONN)
        PyErr_Format(PyExc_ValueError, "slot_conn[%lld]: not a connection below n_conn", (long long)m.slot[at]);
    else
        result = PyLong_FromLongLong(out);
done:
    views_release(&vs);
    return result;
}

static PyMethodDef methods[] = {
    {"advance", (PyCFunction)(void (*)(void))advance, METH_FASTCALL, advance_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._machine",
    "The per-connection TCP/UDP state machine (see flowkit.flows.kernel).", -1, methods,
};

PyMODINIT_FUNC
PyInit__machine(void)
{
    PyObject *mod = PyModule_Create(&module);
    if (!mod)
        return NULL;
    /* the layout the C code hard-codes; kernel.py compares each with its own value */
    static const struct { const char *name; long long value; } consts[] = {
        {"NCOL", NCOL}, {"N_CONN", N_CONN}, {"N_SIDE", N_SIDE}, {"HMAX", HMAX}, {"N_KEY", N_KEY},
        {"INF", INF}, {"TOO_LARGE_SEQ_DELTA", TOO_LARGE_SEQ_DELTA},
        {"CLOSE_DELAY_NS", CLOSE_DELAY_NS}, {"ATTEMPT_DELAY_NS", ATTEMPT_DELAY_NS},
        {"INACTIVE", INACTIVE}, {"SYN_SENT", SYN_SENT}, {"SYN_ACK_SENT", SYN_ACK_SENT}, {"PARTIAL", PARTIAL},
        {"ESTABLISHED", ESTABLISHED}, {"CLOSED", CLOSED}, {"RESET", RESET},
        {"F_TS0", F_TS0}, {"F_TSLAST", F_TSLAST}, {"F_CLOSE_DL", F_CLOSE_DL}, {"F_ATT_DL", F_ATT_DL},
        {"F_ORIG", F_ORIG}, {"F_PROTO", F_PROTO}, {"F_PREFIX", F_PREFIX}, {"F_HLEN", F_HLEN},
        {"F_HSEEN", F_HSEEN}, {"F_SLOT", F_SLOT}, {"F_TSPKT", F_TSPKT}, {"F_ACT_DL", F_ACT_DL},
        {"F_FLIPS", F_FLIPS},
        {"S_PKTS", S_PKTS}, {"S_IPB", S_IPB}, {"S_UDPB", S_UDPB}, {"S_FL", S_FL}, {"S_STATE", S_STATE},
        {"S_PREV", S_PREV}, {"S_DIDCLOSE", S_DIDCLOSE}, {"S_START", S_START}, {"S_LASTABS", S_LASTABS},
        {"S_LASTREL", S_LASTREL}, {"S_ACKABS", S_ACKABS}, {"S_ACKREL", S_ACKREL}, {"S_FINCNT", S_FINCNT},
        {"S_HSYN", S_HSYN}, {"S_HFIN", S_HFIN}, {"S_HRST", S_HRST}, {"S_RXCNT", S_RXCNT}, {"S_RXTH", S_RXTH},
        {"S_ZWCNT", S_ZWCNT}, {"S_ZWTH", S_ZWTH}, {"S_SYNTS", S_SYNTS}, {"S_SYNCNT", S_SYNCNT},
        {"S_SYNLAST", S_SYNLAST}, {"S_SYNACKTS", S_SYNACKTS}, {"S_ACKTS", S_ACKTS}, {"S_INIT", S_INIT},
        {"H_SYN", H_SYN}, {"H_FIN", H_FIN}, {"H_RST", H_RST}, {"H_FINRST", H_FINRST}, {"H_ACK", H_ACK},
        {"H_DATA", H_DATA}, {"H_CORRUPT", H_CORRUPT}, {"H_MULTI", H_MULTI},
        {"TH_FIN", TH_FIN}, {"TH_SYN", TH_SYN}, {"TH_RST", TH_RST}, {"TH_PSH", TH_PSH}, {"TH_ACK", TH_ACK},
        {"TH_URG", TH_URG}, {"TH_ECE", TH_ECE}, {"TH_CWR", TH_CWR},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
        PyObject *v = PyLong_FromLongLong(consts[i].value);
        if (!v || PyModule_AddObject(mod, consts[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(mod);
            return NULL;
        }
    }
    PyObject *bits = PyTuple_New(8);
    for (int k = 0; bits && k < 8; k++)
        PyTuple_SET_ITEM(bits, k, PyLong_FromLongLong(FLAG_BITS[k]));
    if (!bits || PyModule_AddObject(mod, "FLAG_BITS", bits) < 0) {
        Py_XDECREF(bits);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
