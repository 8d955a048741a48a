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

/* Zeek's seq_delta: signed 32-bit difference of two sequence numbers. */
static inline int64_t
sd(int64_t a, int64_t b)
{
    int64_t d = sub(a, b) & 0xFFFFFFFF;
    return d >= 0x80000000LL ? d - 0x100000000LL : d;
}

/* Row `c` of the connections C (conn_t), their history letters H (HMAX a row) and keys K. */
#define ROW(c) (C + (Py_ssize_t)(c))
#define HROW(c) (H + (Py_ssize_t)(c) * HMAX)

static inline void
add_hist(uint8_t *H, conn_t *C, int64_t c, int64_t code)
{
    conn_t *r = ROW(c);
    int n = r->hlen;
    if (n < HMAX) {
        HROW(c)[n] = (uint8_t)code;
        r->hlen = (uint8_t)(n + 1);
    }
}

/* Zeek's CheckHistory: letter once per role; 1 when it was seen before. */
static inline int
check_hist(uint8_t *H, conn_t *C, int64_t c, int is_orig, uint32_t mask, int64_t code)
{
    if (!is_orig) {
        mask <<= 16;
        code += 32; /* lower case */
    }
    conn_t *r = ROW(c);
    if ((r->hseen & mask) == 0) {
        r->hseen |= mask;
        add_hist(H, C, c, code);
        return 0;
    }
    return 1;
}

/* Zeek's ScaledHistoryEntry: letter at the 1st, 10th, 100th... occurrence. Zeek keeps the
 * next threshold (x10 each time); it is the power of ten above the count, so the count alone
 * says when: `count` is the occurrence just counted. */
static inline void
scaled(uint8_t *H, conn_t *C, int64_t c, int64_t count, int64_t code)
{
    while (count >= 10 && count % 10 == 0)
        count /= 10;
    if (count == 1)
        add_hist(H, C, c, code);
}

static void
new_conn(conn_t *C, conn_key_t *K, const int64_t *key, int64_t n, int64_t t, int64_t proto, int64_t orig_side,
         int64_t prefix, int64_t active_ns)
{
    conn_t *r = ROW(n);
    memset(r, 0, sizeof *r);
    r->ts0 = t;
    r->tslast = t;
    r->tspkt = t;
    r->close_dl = INF;
    r->att_dl = INF;
    r->act_dl = active_ns > 0 ? add(t, active_ns) : INF;
    r->orig = (uint8_t)orig_side;
    r->proto = (uint8_t)proto;
    r->prefix = prefix != 0;
    for (int s = 0; s < 2; s++) {
        side_t *b = &r->side[s];
        b->hsyn = INF;
        b->hfin = INF;
        b->hrst = INF;
        b->synts = -1;
        b->synlast = -1;
        b->synackts = -1;
        b->ackts = -1;
    }
    store_key(K + n, key);
}

/* Zeek's IsReuse: does this SYN start a new connection on the same five-tuple? */
static int
is_reuse(const conn_t *r, int64_t flags, int64_t seq)
{
    if ((flags & TH_SYN) == 0)
        return 0;
    const side_t *o = &r->side[r->orig], *p = &r->side[1 - r->orig];
    const side_t *conn_orig = o;
    if (flags & TH_ACK) {
        if (o->state != INACTIVE)
            return 0;
        conn_orig = p;
    }
    int closed = o->didclose != 0 || p->didclose != 0;
    if (!closed) {
        if (seq == conn_orig->start)
            return 0;
        if ((flags & TH_ACK) == 0 && conn_orig->state == SYN_ACK_SENT && p->state == INACTIVE && seq == p->start)
            return 0;
    }
    return 1;
}

/* Zeek's ConnectionClosed: mark the side closed; a complete close removes the connection 5 s later. */
static inline void
closed(conn_t *r, side_t *e, const side_t *p, int64_t t)
{
    if (e->didclose)
        return;
    e->didclose = 1;
    if (e->state == RESET || p->didclose || p->state == INACTIVE) {
        r->close_dl = add(t, CLOSE_DELAY_NS);
        r->att_dl = INF; /* CancelTimers */
    }
}

static inline void
set_state(side_t *e, int st)
{
    e->prev = e->state;
    e->state = (uint8_t)st;
}

/* (Re)start endpoint e's sequence space at `start`: nothing acknowledged yet, last byte at
 * `last_abs` (`last_rel` relative to start). Zeek's TCP_Endpoint::InitStartSeq and friends. */
static inline void
seq_space(side_t *e, int64_t start, int64_t last_abs, int64_t last_rel)
{
    e->start = (uint32_t)start;
    e->ackabs = (uint32_t)start;
    e->ackrel = 0;
    e->lastabs = (uint32_t)last_abs;
    e->lastrel = last_rel;
    e->rtop = 1; /* relative 1: the first byte after the SYN */
    e->blk0 = e->blk1 = 0;
}

/* Content gaps, after Zeek's TCP_Reassembler: an endpoint's data is delivered in order up to
 * rtop (relative sequence); data beyond it waits (one block [blk0, blk1) here, where
 * Zeek keeps a list: a second hole is merged into the block, which can only undercount).
 * When the peer acknowledges bytes never delivered, they are a content gap: missed_bytes and
 * the scaled g/G letter, counted only while both endpoints are established or cleanly
 * closing, as Zeek (partial connections report none). */
static inline void
data_seen(side_t *e, int64_t from, int64_t to)
{
    int64_t top = e->rtop, b0 = e->blk0, b1 = e->blk1;
    if (from <= top) {
        if (to > top)
            top = to;
        if (b1 > b0 && b0 <= top) {
            if (b1 > top)
                top = b1;
            b0 = b1 = 0;
        }
    } else if (b1 > b0) {
        if (from < b0)
            b0 = from;
        if (to > b1)
            b1 = to;
    } else {
        b0 = from;
        b1 = to;
    }
    e->rtop = top, e->blk0 = b0, e->blk1 = b1;
}

static inline int
established_or_closing(const side_t *e)
{
    return e->state == ESTABLISHED || (e->state == CLOSED && e->prev == ESTABLISHED);
}

/* The peer p acknowledged endpoint e's data up to relative `upto`. */
static inline void
ack_gap(uint8_t *H, conn_t *C, int64_t c, side_t *e, const side_t *p, int64_t upto, int e_is_orig)
{
    if (e->fins > 0 && upto > e->hfin)
        upto = e->hfin; /* an ACK of the FIN is no data */
    int64_t top = e->rtop;
    if (upto <= top)
        return;
    int64_t gap = upto - top, b0 = e->blk0, b1 = e->blk1;
    if (b1 > b0) {
        int64_t lo = b0 > top ? b0 : top, hi = b1 < upto ? b1 : upto;
        if (hi > lo)
            gap -= hi - lo;
    }
    e->rtop = upto;
    if (b1 > b0 && b0 <= upto) {
        if (b1 > upto)
            e->rtop = b1;
        e->blk0 = e->blk1 = 0;
    }
    if (gap > 0 && established_or_closing(e) && established_or_closing(p)) {
        e->missed = add(e->missed, gap);
        e->gapcnt = add(e->gapcnt, 1);
        scaled(H, C, c, e->gapcnt, e_is_orig ? 'G' : 'g');
    }
}

/* Zeek's TCPSessionAdapter::Process for one packet of connection `c`. */
static void
tcp_packet(conn_t *C, uint8_t *H, int64_t c, int64_t side, int64_t t, int64_t flags, int64_t seq, int64_t ack,
           int64_t win, int64_t plen)
{
    conn_t *r = ROW(c);
    int is_orig = side == r->orig;
    side_t *e = &r->side[side];
    side_t *p = &r->side[1 - side];
    int syn = (flags & TH_SYN) != 0;
    int fin = (flags & TH_FIN) != 0;
    int rst = (flags & TH_RST) != 0;
    int ackf = (flags & TH_ACK) != 0;

    int64_t seg_len = add(plen, syn + fin);
    if (rst)
        seg_len = sub(seg_len, plen);
    int64_t past = add(seq, seg_len) & 0xFFFFFFFF;

    /* init_endpoint */
    int st = e->state;
    if (st == INACTIVE) {
        if (syn)
            seq_space(e, seq, past, sd(past, seq));
        else
            seq_space(e, sub(seq, 1) & 0xFFFFFFFF, seq, 1);
        e->init = 1;
    } else if (syn && (((st == SYN_SENT || st == SYN_ACK_SENT) && seq != e->start) || st == ESTABLISHED ||
                       st == PARTIAL || (st == RESET && e->prev == INACTIVE))) {
        seq_space(e, seq, past, sd(past, seq));
    }

    int64_t rel_seq = sd(seq, e->start);

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
            if (check_hist(H, C, c, is_orig, H_SYN, code) && rel_seq != e->hsyn)
                add_hist(H, C, c, is_orig ? code : code + 32);
            e->hsyn = rel_seq;
        }
        if (fin) {
            if (check_hist(H, C, c, is_orig, H_FIN, 'F') && add(rel_seq, plen) != e->hfin)
                add_hist(H, C, c, is_orig ? 'F' : 'f');
            e->hfin = add(rel_seq, plen);
        }
        if (rst) {
            if (check_hist(H, C, c, is_orig, H_RST, 'R') && rel_seq != e->hrst)
                add_hist(H, C, c, is_orig ? 'R' : 'r');
            e->hrst = rel_seq;
        }
    } else {
        if (plen)
            check_hist(H, C, c, is_orig, H_DATA, 'D');
        else if (ackf)
            check_hist(H, C, c, is_orig, H_ACK, 'A');
    }

    /* update_window: zero windows, logarithmically */
    if (win == 0 && !rst && p->state != CLOSED && e->state != RESET) {
        e->zwcnt = add(e->zwcnt, 1);
        scaled(H, C, c, e->zwcnt, is_orig ? 'W' : 'w');
    }

    if (!(e->didclose && p->didclose))
        r->tslast = t;

    if (fin && e->fins < UINT8_MAX) /* only whether one was sent is read */
        e->fins++;

    if (ackf) {
        if (p->state == INACTIVE) {
            int64_t start = sub(ack, 1) & 0xFFFFFFFF; /* init_peer */
            seq_space(p, start, start, 0);
            p->init = 1;
        } else {
            int underflow = sd(ack, p->start) < 0;
            if (!underflow && !rst) {
                int64_t d = sd(ack, p->ackabs);
                if (ack == 0 && d > TOO_LARGE_SEQ_DELTA) {
                } else if (d > 0) {
                    p->ackabs = (uint32_t)ack;
                    p->ackrel = add(p->ackrel, d);
                }
            }
        }
    }

    if (plen > 0 && !rst)
        data_seen(e, add(rel_seq, syn), add(add(rel_seq, syn), plen));
    if (ackf && !rst && p->init)
        ack_gap(H, C, c, p, e, sd(ack, p->start), !is_orig);

    /* update_last_seq (uses the state before this packet's transition) */
    int64_t dl = sd(past, e->lastabs);
    if ((syn || rst) && (dl > TOO_LARGE_SEQ_DELTA || dl < -TOO_LARGE_SEQ_DELTA)) {
    } else if (fin && e->lastrel == 1) {
        e->lastabs = (uint32_t)past;
        e->lastrel = add(e->lastrel, dl);
    } else if (e->state == RESET) {
    } else if (dl > 0) {
        e->lastabs = (uint32_t)past;
        e->lastrel = add(e->lastrel, dl);
    } else if (plen > 0) {
        e->rxcnt = add(e->rxcnt, 1);
        scaled(H, C, c, e->rxcnt, is_orig ? 'T' : 't');
    }

    /* UpdateStateMachine */
    int do_close = 0;
    st = e->state;
    int pst = p->state;
    if (st == INACTIVE) {
        if (syn) {
            if (is_orig) {
                set_state(e, ackf ? SYN_ACK_SENT : SYN_SENT);
                if (r->att_dl == INF)
                    r->att_dl = add(t, ATTEMPT_DELAY_NS);
            } else {
                if (!ackf && pst == SYN_ACK_SENT && seq == e->start) {
                    /* SYN/SYN-ACK reversal: flip roles and establish */
                    r->orig = (uint8_t)side;
                    r->flipped = 1;
                    add_hist(H, C, c, '^');
                    set_state(p, ESTABLISHED);
                    pst = ESTABLISHED;
                }
                if (pst == SYN_SENT)
                    set_state(p, ESTABLISHED);
                set_state(e, ESTABLISHED);
            }
        }
        if (fin) {
            set_state(e, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(e, RESET);
            do_close = 1;
        }
        if (e->state == INACTIVE) {
            const side_t *o = &r->side[r->orig];
            if (!is_orig && plen == 0 && o->state == SYN_SENT) {
                /* an ACK of the SYN before the SYN-ACK does not make a partial connection */
            } else if (ackf && p->state == ESTABLISHED) {
                set_state(e, ESTABLISHED);
            } else {
                set_state(e, PARTIAL);
            }
        }
    } else if (st == SYN_SENT || st == SYN_ACK_SENT) {
        if (fin) {
            set_state(e, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(e, RESET);
            do_close = 1;
        }
    } else if (st == ESTABLISHED || st == PARTIAL) {
        if (syn && st == PARTIAL && pst == INACTIVE && !ackf)
            set_state(e, SYN_SENT);
        if (fin && !rst) {
            set_state(e, CLOSED);
            if (p->state == RESET && p->prev == CLOSED)
                set_state(p, CLOSED);
            do_close = 1;
        }
        if (rst) {
            set_state(e, RESET);
            do_close = 1;
        }
    } else if (st == CLOSED) {
        if (rst && p->state != CLOSED) {
            set_state(e, RESET);
            if (!e->didclose)
                do_close = 1;
        }
    }
    if (do_close)
        closed(r, e, p, t);
}

static inline void
count(conn_t *r, int64_t side, int64_t t, int64_t flags, int64_t ip_len, int64_t plen, int64_t proto)
{
    side_t *b = &r->side[side];
    b->pkts = add(b->pkts, 1);
    b->ipb = add(b->ipb, ip_len);
    r->tspkt = t;
    if (proto != 6) {
        b->udpb = add(b->udpb, plen);
        r->tslast = t;
        return;
    }
    for (int k = 0; k < 8; k++)
        if (flags & FLAG_BITS[k])
            b->fl[k]++;
    /* handshake timestamps, per canonical side (the originator is chosen at the end) */
    side_t *peer = &r->side[1 - side];
    int syn = (flags & TH_SYN) != 0;
    int ack = (flags & TH_ACK) != 0;
    if (syn && !ack) {
        b->syncnt = add(b->syncnt, 1);
        if (b->synts < 0)
            b->synts = t;
        if (peer->synackts < 0)
            b->synlast = t;
    } else if (syn && ack) {
        if (b->synackts < 0)
            b->synackts = t;
    } else if (ack && peer->synackts >= 0 && b->ackts < 0) {
        b->ackts = t;
    }
}

/* Does packet (t, proto, flags, seq) start a new connection instead of joining row r?
 * Sets *keep_orig to the predecessor's originator when an active timeout cut it. */
static inline int
starts_new(const conn_t *r, int64_t t, int64_t proto, int64_t flags, int64_t seq, int64_t tcp_ns, int64_t udp_ns,
           int64_t *keep_orig)
{
    int64_t timeout = timeout_of(proto, tcp_ns, udp_ns);
    int fresh = 0;
    if (sub(t, r->tspkt) >= timeout || t >= r->close_dl || t >= r->act_dl) {
        fresh = 1;
    } else if (t >= r->att_dl) {
        int ost = r->side[r->orig].state, qst = r->side[1 - r->orig].state;
        if ((ost == SYN_SENT || ost == SYN_ACK_SENT) && qst == INACTIVE)
            fresh = 1;
    }
    if (!fresh && proto == 6 && is_reuse(r, flags, seq))
        fresh = 1;
    *keep_orig = -1;
    if (fresh && t >= r->act_dl && sub(t, r->tspkt) < timeout && t < r->close_dl)
        *keep_orig = r->orig;
    return fresh;
}

/* Deadline of open row r: from then on a packet on its key starts a new connection (the
 * time rules of starts_new above) and takes nothing from it; rows past it are finished
 * by eviction (or, spilled, need no replay), so it must not depend on when that runs. */
static inline int64_t
deadline(const conn_t *r, int64_t tcp_ns, int64_t udp_ns)
{
    int64_t dl = add(r->tspkt, timeout_of(r->proto, tcp_ns, udp_ns));
    if (r->close_dl < dl)
        dl = r->close_dl;
    /* cut by the active timeout before that: the next connection on the key inherits the
     * originator until then (starts_new's keep_orig), so the row stays at hand */
    if (r->act_dl < dl)
        return dl;
    int ost = r->side[r->orig].state, rst = r->side[1 - r->orig].state;
    if ((ost == SYN_SENT || ost == SYN_ACK_SENT) && rst == INACTIVE && r->att_dl < dl)
        dl = r->att_dl;
    return dl;
}

/* Open connection `n` for a packet: orientation, row, the '^' of a flip. */
static inline void
open_conn(conn_t *C, uint8_t *H, conn_key_t *K, const int64_t *key, int64_t n, int64_t t, int64_t side,
          int64_t proto, int64_t flags, int64_t keep_orig, int64_t prefix, int64_t active_ns)
{
    int flip = flips(key, side, proto, flags);
    int64_t orig = flip ? 1 - side : side;
    if (keep_orig >= 0) {
        orig = keep_orig;
        flip = 0;
    }
    new_conn(C, K, key, n, t, proto, orig, prefix, active_ns);
    memset(HROW(n), 0, HMAX); /* a reused row must not keep its old letters */
    if (flip) {
        ROW(n)->flipped = 1;
        add_hist(H, C, n, '^');
    }
}

/* Zeek (since 5.1, PR #2191) flips a connection that began with an unflipped SYN-ACK when
 * the packet right after it, in either direction, is an ACK or carries data: a stealth
 * scan's SYN-ACK draws a RST or nothing. The history then reads as if the flip had come
 * first (Zeek's logs show "^h..."): letters change role, '^' leads. */
static inline int
late_flip(const conn_t *r, int64_t flags, int64_t plen)
{
    const side_t *o = &r->side[r->orig], *q = &r->side[1 - r->orig];
    if (r->flipped || add(o->pkts, q->pkts) != 1 || o->state != SYN_ACK_SENT || q->state != INACTIVE)
        return 0;
    int ack_only = (flags & TH_ACK) != 0 && (flags & (TH_SYN | TH_RST)) == 0;
    return ack_only || plen > 0;
}

static inline void
flip_late(uint8_t *H, conn_t *C, int64_t c)
{
    conn_t *r = ROW(c);
    uint8_t *h = HROW(c);
    int n = r->hlen < HMAX ? r->hlen : HMAX - 1;
    for (int i = n; i > 0; i--) {
        uint8_t x = h[i - 1];
        h[i] = (x >= 'A' && x <= 'Z') ? x + 32 : (x >= 'a' && x <= 'z') ? x - 32 : x;
    }
    h[0] = '^';
    r->hlen = (uint8_t)(n + 1);
    r->hseen = ((r->hseen & 0xFFFF) << 16) | ((r->hseen >> 16) & 0xFFFF);
    r->orig = 1 - r->orig;
    r->flipped = 1;
}

/* A packet whose transport checksum is wrong (verify_checksums), as Zeek without -C: its
 * connection exists (the packet may have opened it) but the packet is not counted and moves
 * no state or time; TCP and UDP add the scaled C/c letter (TCP_Endpoint::ChecksumError,
 * UDPSessionAdapter::HandleBadChecksum), ICMP nothing (ICMPAnalyzer::DeliverPacket). */
static inline void
checksum_error(uint8_t *H, conn_t *C, int64_t c, int64_t side, int64_t proto)
{
    if (proto != 6 && proto != 17)
        return;
    side_t *e = &ROW(c)->side[side];
    e->chkcnt = add(e->chkcnt, 1);
    scaled(H, C, c, e->chkcnt, side == ROW(c)->orig ? 'C' : 'c');
}

/* Does an ICMP error quoting this connection's five-tuple at time t report on open row r?
 * Only while a packet at t would still join it (the time rules of starts_new). */
static inline int
reports_on(const conn_t *r, int64_t t, int64_t tcp_ns, int64_t udp_ns)
{
    return t < deadline(r, tcp_ns, udp_ns);
}

/* An ICMP error (type, code, sender) quoting connection c's five-tuple: counted, the last
 * one kept. The quote is no packet of the connection: nothing else changes. */
static inline void
icmp_report(conn_t *C, int64_t c, const flow_pkt_t *f)
{
    conn_t *r = ROW(c);
    r->errs = add(r->errs, 1);
    r->etype = (uint8_t)f->etype; /* ICMP type and code: bytes */
    r->ecode = (uint8_t)f->ecode;
    r->esrchi = f->ehi;
    r->esrclo = f->elo;
}

/* Tunnels (the links come from _rules.h's tunnel_links): a packet that carried a flow packet
 * marks its connection a tunnel parent; a packet that came through a tunnel adds its
 * parent's key to the connection's parent slots (a new key in the first free slot, at most
 * N_PAR keys, later ones dropped; a known key widens its first/last time). Times, not the
 * parent's row: the row may be open elsewhere (another part, on disk), so the slots are
 * resolved to the parents' flow_ids once every row is final (flows/parents.py). */
static inline void
tunnel_packet(conn_t *C, int64_t c, int64_t t, uint64_t parent, int64_t encloses)
{
    conn_t *r = ROW(c);
    if (encloses)
        r->encloses = 1;
    if (!parent)
        return;
    for (int j = 0; j < N_PAR; j++) {
        par_t *s = &r->par[j];
        if (s->key == parent) {
            if (t < s->first)
                s->first = t;
            if (t > s->last)
                s->last = t;
            return;
        }
        if (s->key == 0) {
            s->key = parent;
            s->first = s->last = t;
            return;
        }
    }
}

/* One packet of connection c: counters, then Zeek's TCP or UDP logic. */
static inline void
feed(conn_t *C, uint8_t *H, int64_t c, int64_t side, int64_t t, int64_t flags, int64_t seq, int64_t ack,
     int64_t win, int64_t plen, int64_t iplen, int64_t proto, int64_t kind)
{
    conn_t *r = ROW(c);
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
        r->side[side].state = PARTIAL; /* UDP_ACTIVE; ICMP and others: active */
        if (proto == 17)
            check_hist(H, C, c, side == r->orig, H_DATA, 'D'); /* Zeek writes no history for the others */
    }
}

/* Address words of a connection's side (0/1: canonical sides of its key). */
static inline void
side_address(const conn_key_t *key, int64_t s, int64_t *hi, int64_t *lo)
{
    *hi = (int64_t)(s ? key->bhi : key->ahi);
    *lo = (int64_t)(s ? key->blo : key->alo);
}

/* Service identification for one packet of connection c (after feed: the roles are
 * current): its captured payload pl[0..n) through the rules of protocols/_identify.h,
 * until they say nothing more can be learnt. A data connection announced on a control
 * channel goes to the expectation table E (NULL: none kept). */
static __attribute__((noinline)) void
identify_slow(conn_t *C, const conn_key_t *K, int64_t c, int64_t side, int64_t t, int64_t proto, const uint8_t *pl,
              int64_t n, int64_t *E)
{
    conn_t *r = ROW(c);
    const side_t *s0 = &r->side[0], *s1 = &r->side[1];
    int partial = proto == 6 && s0->syncnt == 0 && s1->syncnt == 0 && s0->synackts < 0 &&
                  s1->synackts < 0; /* no SYN seen */
    svc_t s = {r->svc, (uint64_t)r->svcn};
    svc_expect_t ex;
    svc_packet(&s, pl, n, side == r->orig, proto == 6, partial, r->name, NAME_LEN, &ex);
    r->svc = s.bits;
    r->svcn = (int64_t)s.count | (svc_settled(&s) ? INT64_MIN : 0);
    if (ex.service >= 0 && E) {
        int64_t hi, lo;
        if (ex.has_addr) {
            hi = (int64_t)be64(ex.addr);
            lo = (int64_t)be64(ex.addr + 8);
        } else {
            int64_t orig = r->orig;
            side_address(K + c, ex.peer ? 1 - orig : orig, &hi, &lo);
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
 * data, until settled (the sign bit of svcn); out of line past these cheap tests, so the
 * loops stay small. */
static inline void
identify(conn_t *C, const conn_key_t *K, int64_t c, int64_t side, int64_t t, int64_t proto, int64_t at, int64_t n,
         const uint8_t *data, Py_ssize_t n_data, int64_t *E)
{
    if (n > 0 && ROW(c)->svcn >= 0 && (proto == 6 || proto == 17) && at >= 0 && at + n <= n_data)
        identify_slow(C, K, c, side, t, proto, data + at, n, E);
}

/* Whether open connection row r may still announce a data connection (FTP PORT/PASV, IRC
 * DCC): it is a control channel or shows the start of one (SVC_ANNOUNCER). The one-pass
 * driver keeps these in memory past its budget, so their announcements come in time; those
 * a spilled connection makes at its replay are applied afterwards (flows/expected.py). */
static inline int
may_announce(const conn_t *r)
{
    return (r->svc & SVC_ANNOUNCER) != 0;
}

/* A new TCP connection announced on a control channel (FTP data, IRC DCC) is named by
 * the announcement, as Zeek names a scheduled analyzer's connection. */
static inline void
expected(conn_t *C, const conn_key_t *K, int64_t c, int64_t t, int64_t *E)
{
    conn_t *r = ROW(c);
    if (!E || E[0] == 0 || r->proto != 6)
        return;
    const conn_key_t *key = K + c;
    int64_t resp = 1 - r->orig, hi, lo;
    side_address(key, resp, &hi, &lo);
    int64_t service = expect_take(E, hi, lo, resp ? key->bport : key->aport, t);
    if (service >= 0) {
        r->svc |= (uint64_t)1 << service;
        r->svcn |= INT64_MIN; /* named by the announcement: nothing to read */
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
