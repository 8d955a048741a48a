/* One-pass flow building for flowkit.flows(): packet batch columns straight into open
 * connections held in a hash table (stream.py owns the arrays).
 *
 * Why a second driver next to _machine.c: the mergeable path re-keys every batch with
 * sorts and set operations (np.unique, np.isin, a sorted open-row table) because merging
 * needs per-key bookkeeping; a single pass over one capture needs none of that. Here each
 * packet finds its connection by its 64-bit key in an open-addressing table, so a batch
 * costs one pass and no Python per batch beyond the call. The rules (which packets, key,
 * side, orientation) are _rules.h's and the state machine _conn.h's, as for _machine.c.
 *
 * Rows: C/H/K hold connections; `used` marks open ones; freed rows are reused (stack
 * `free`); `times`, three a row: its last packet time (INT64_MAX while it may announce a
 * data connection: what the spill chooses by), first packet time and _conn.h's deadline, kept
 * at every packet (the spill and the eviction read these, not the 726-byte rows: a cache
 * miss or two a row).
 * Table: keys/row, linear probing; row -1 empty, -2 deleted. meta: [0] rows in use or freed
 * (high-water mark), [1] free rows, [2] table slots not empty, [3] newest packet time seen,
 * [4] keys in the spilled filter (0: no lookups; stream.py resets it when layers go).
 *
 * Memory budget (stream.py): the keys of connections moved to disk enter the spilled
 * filter, a blocked Bloom filter (one cache line a lookup per layer, 32 bits a key: 16
 * keys a 512-bit block, 2.6e-5 false positives in a full layer; keyfilter.py). A packet
 * whose key is not open here but in the filter is deferred: its index is reported,
 * stream.py writes it next to the spilled rows of its key's partition, and at the end each
 * partition is replayed in capture order. A key whose packet was deferred
 * stays in the filter, so all its later packets are deferred too and the replay sees them
 * in order (keyfilter.py: other keys leave once their rows are settled); a false positive
 * only defers a key that was never spilled, whose connections the replay then builds from
 * its packets alone: the same result either way.
 */
#include "_conn.h"

#define EMPTY (-1)
#define DELETED (-2)
enum { M_ROWS, M_FREE, M_FILLED, M_TMAX, M_SFILLED, N_META };

typedef struct {
    conn_t *C;
    conn_key_t *K;
    int64_t *freelist, *tm;
    uint8_t *H, *used;
} rows_t;

/* an open row's times (the `times` column, three a row: one cache line for the kernel's updates) */
enum { T_LAST, T_START, T_DEADLINE, N_TIMES };
#define TM(r, c, k) ((r).tm[(Py_ssize_t)(c) * N_TIMES + (k)])

static const column_t ROW_COLUMNS[] = {
    {"C", "B", sizeof(conn_t), offsetof(rows_t, C), 1}, {"H", "B", HMAX, offsetof(rows_t, H), 1},
    {"K", "B", sizeof(conn_key_t), offsetof(rows_t, K), 1}, {"used", "B", 1, offsetof(rows_t, used), 1},
    {"free", "l", 1, offsetof(rows_t, freelist), 1}, {"times", "l", N_TIMES, offsetof(rows_t, tm), 1},
};
#define N_ROW_COLUMNS 6

typedef struct {
    uint64_t *keys;
    int64_t *row;
} table_t;

static const column_t TABLE_COLUMNS[] = {
    {"keys", "L", 1, offsetof(table_t, keys), 1}, {"row", "l", 1, offsetof(table_t, row), 1},
};

static const char *const STREAM_OPTIONS[] = {"tcp_ns", "udp_ns", "active_ns", "vlan_key"};

/* The spilled filter: blocks of 8 words (512 bits, one cache line); `layers` lists
 * (first block, blocks) of each layer, a key is in when it is in any layer; spill() adds
 * to the last one, remember() to the last of the layers it is given (keyfilter.py adds
 * and drops layers). */
#define BLOCK_WORDS 8
#define BLOOM_BITS 7

typedef struct {
    uint64_t *words;
    const int64_t *layers;
    Py_ssize_t n_layers;
} bloom_t;

/* The block of key hash h in a layer of n blocks: the high word of h times n (h % n took a
 * ~40-cycle division a layer of every lookup). Not h times an odd constant first: mix(), which
 * places the bits within the block, starts with that product, and the two correlated (35 %
 * more false positives on a spray). */
static inline uint64_t *
bloom_block(const bloom_t *b, Py_ssize_t layer, uint64_t h)
{
    int64_t first = b->layers[2 * layer], n = b->layers[2 * layer + 1];
    uint64_t at = (uint64_t)(((unsigned __int128)h * (uint64_t)n) >> 64);
    return b->words + (first + (int64_t)at) * BLOCK_WORDS;
}

static inline void
bloom_spot(const bloom_t *b, Py_ssize_t layer, uint64_t h, uint64_t **block, uint64_t *bits)
{
    *block = bloom_block(b, layer, h);
    *bits = mix(h, 0x5bd1e995); /* 7 positions of 9 bits each within the block */
}

static inline int
bloom_has(const bloom_t *b, uint64_t h)
{
    for (Py_ssize_t l = 0; l < b->n_layers; l++) {
        uint64_t *block, g;
        bloom_spot(b, l, h, &block, &g);
        int all = 1;
        for (int j = 0; j < BLOOM_BITS && all; j++) {
            unsigned bit = (unsigned)(g >> (9 * j)) & 511;
            all = (block[bit >> 6] >> (bit & 63)) & 1;
        }
        if (all)
            return 1;
    }
    return 0;
}

static inline void
bloom_add(bloom_t *b, uint64_t h)
{
    uint64_t *block, g;
    bloom_spot(b, b->n_layers - 1, h, &block, &g);
    for (int j = 0; j < BLOOM_BITS; j++) {
        unsigned bit = (unsigned)(g >> (9 * j)) & 511;
        block[bit >> 6] |= (uint64_t)1 << (bit & 63);
    }
}

/* The filter's two arrays: words (uint64) and layers (int64 pairs), checked. */
static int
bind_bloom(views_t *vs, PyObject *owords, PyObject *olayers, bloom_t *b)
{
    Py_ssize_t nw, nl;
    if (!(b->words = view_of(vs, owords, "L", 1, "bloom_words", &nw)) ||
        !(b->layers = view_of(vs, olayers, "l", 0, "bloom_layers", &nl)))
        return 0;
    b->n_layers = nl / 2;
    int ok = nl % 2 == 0 && nl > 0;
    for (Py_ssize_t l = 0; ok && l < b->n_layers; l++)
        ok = b->layers[2 * l] >= 0 && b->layers[2 * l + 1] > 0 &&
             (b->layers[2 * l] + b->layers[2 * l + 1]) * BLOCK_WORDS <= nw;
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "bloom_layers: (first block, blocks) pairs within bloom_words");
    return ok;
}

typedef struct {
    rows_t r;
    table_t tb;
    bloom_t sp;
    Py_ssize_t n_deferred;
    int64_t *meta, *done, *deferred, *expect;
    packet_cols_t p;
    payload_cols_t pl;
    const uint8_t *data;
    Py_ssize_t n_pl, n_data;
    Py_ssize_t cap, tcap, n;
    int64_t tcp_ns, udp_ns, active_ns, vlan_key;
} stream_t;

/* Table slot holding key h, or the slot where it would go (first deleted or empty one). */
static inline Py_ssize_t
probe(const uint64_t *tkeys, const int64_t *trow, Py_ssize_t tcap, uint64_t h, int *found)
{
    Py_ssize_t mask = tcap - 1, i = (Py_ssize_t)(h & (uint64_t)mask), spare = -1;
    for (;;) {
        if (trow[i] == EMPTY) {
            *found = 0;
            return spare >= 0 ? spare : i;
        }
        if (trow[i] == DELETED) {
            if (spare < 0)
                spare = i;
        } else if (tkeys[i] == h) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Packets keyed ahead of the one processed: their table slots, spilled-filter blocks and the
 * next free rows are fetched while earlier packets run (a new key's lookups were cache
 * misses, one per filter layer: over half the kernel's time on flow-heavy captures). */
#define AHEAD 8
#define AHEAD_LAYERS 16

/* Prefetches as statements of the kernel: in a helper function GCC took the helper for pure
 * (a prefetch changes no value) and dropped the calls. */
#define FETCH_AHEAD(s, h)                                                                               \
    do {                                                                                                \
        Py_ssize_t slot_ = (Py_ssize_t)((h) & (uint64_t)((s)->tcap - 1));                              \
        __builtin_prefetch((s)->tb.keys + slot_);                                                       \
        __builtin_prefetch((s)->tb.row + slot_);                                                        \
        if ((s)->meta[M_SFILLED] > 0)                                                                   \
            for (Py_ssize_t l_ = 0; l_ < (s)->sp.n_layers && l_ < AHEAD_LAYERS; l_++)                  \
                __builtin_prefetch(bloom_block(&(s)->sp, l_, (h)));                                     \
    } while (0)

/* Row c's times from the row (after each of its packets; for rows loaded from disk): its
 * last packet time, INT64_MAX while it may announce a data connection (stream.py does not
 * spill those); its first packet time; _conn.h's deadline. */
static inline void
keep_times(rows_t *r, int64_t c, int64_t tcp_ns, int64_t udp_ns)
{
    const conn_t *row = r->C + c;
    TM(*r, c, T_LAST) = may_announce(row) ? INT64_MAX : row->tspkt;
    TM(*r, c, T_START) = row->ts0;
    TM(*r, c, T_DEADLINE) = deadline(row, tcp_ns, udp_ns);
}

/* One flow packet (row `i` of the batch, keyed as `f`); -1 when out of rows. */
static inline int
process(stream_t *s, Py_ssize_t i, const flow_pkt_t *f, Py_ssize_t *n_done)
{
    conn_t *C = s->r.C;
    int64_t *meta = s->meta;
    uint64_t h = (uint64_t)f->key[K_HASH];
    if (f->t > meta[M_TMAX])
        meta[M_TMAX] = f->t;
    int found;
    Py_ssize_t slot = probe(s->tb.keys, s->tb.row, s->tcap, h, &found);
    int64_t c = found ? s->tb.row[slot] : -1, keep_orig = -1;
    if (!found && meta[M_SFILLED] > 0 && bloom_has(&s->sp, h)) {
        s->deferred[s->n_deferred++] = i;
        return 0;
    }
    if (f->kind == PK_ICMP_REPORT) { /* reports on an open connection, never opens one */
        if (c >= 0 && reports_on(ROW(c), f->t, s->tcp_ns, s->udp_ns))
            icmp_report(C, c, f); /* not a packet of it: its `last` stays */
        return 0;
    }
    if (c >= 0 && starts_new(ROW(c), f->t, f->proto, f->flags, f->seq, s->tcp_ns, s->udp_ns, &keep_orig)) {
        s->r.used[c] = 0;
        s->done[(*n_done)++] = c; /* freed after the caller has copied it out */
        c = -1;
    }
    if (c < 0) {
        int64_t row;
        if (meta[M_FREE] > 0)
            row = s->r.freelist[--meta[M_FREE]];
        else if (meta[M_ROWS] < s->cap)
            row = meta[M_ROWS]++;
        else
            return -1;
        open_conn(C, s->r.H, s->r.K, f->key, row, f->t, f->side, f->proto, f->flags, keep_orig, 0, s->active_ns);
        expected(C, s->r.K, row, f->t, s->expect);
        s->r.used[row] = 1;
        if (!found) {
            if (s->tb.row[slot] == EMPTY)
                meta[M_FILLED]++;
            s->tb.keys[slot] = h;
        }
        s->tb.row[slot] = row;
        c = row;
        /* the row the next new connection takes, fetched for writing while this packet runs */
        int64_t next = meta[M_FREE] > 0 ? s->r.freelist[meta[M_FREE] - 1] : meta[M_ROWS] < s->cap ? meta[M_ROWS] : row;
        for (size_t at = 0; at < sizeof(conn_t); at += 64)
            __builtin_prefetch((const char *)ROW(next) + at, 1);
        __builtin_prefetch(s->r.H + next * HMAX, 1);
        __builtin_prefetch(s->r.K + next, 1);
    }
    feed(C, s->r.H, c, f->side, f->t, f->flags, f->seq, f->ack, f->win, f->plen, f->iplen, f->proto, f->kind);
    if (s->n_pl && f->kind == PK_PACKET) /* Zeek's analyzers never see a packet whose checksum is wrong */
        identify(C, s->r.K, c, f->side, f->t, f->proto, s->pl.start[i], s->pl.caplen[i], s->data, s->n_data,
                 s->expect);
    tunnel_packet(C, c, f->t, f->parent, f->encloses);
    keep_times(&s->r, c, s->tcp_ns, s->udp_ns);
    return 0;
}

/* Returns the number of rows finished (written to done), or -1 when out of rows. */
static Py_ssize_t
run_stream(stream_t *s)
{
    Py_ssize_t n_done = 0;
    flow_pkt_t ring[AHEAD];
    int ok[AHEAD];
    for (Py_ssize_t i = 0; i < s->n + AHEAD; i++) {
        Py_ssize_t at = i - AHEAD, j = i % AHEAD; /* packet `at` leaves ring slot j, packet i takes it */
        if (at >= 0 && ok[j] && process(s, at, &ring[j], &n_done) < 0)
            return -1;
        if (i < s->n && (ok[j] = flow_packet(&s->p, i, (int)s->vlan_key, &ring[j])))
            FETCH_AHEAD(s, (uint64_t)ring[j].key[K_HASH]);
    }
    return n_done;
}

/* The state arguments every call binds: rows, table and meta. */
static int
bind_state(views_t *vs, PyObject *orows, PyObject *otable, PyObject *ometa, rows_t *r, table_t *tb, int64_t **meta,
           Py_ssize_t *cap, Py_ssize_t *tcap)
{
    Py_ssize_t nmeta;
    *cap = *tcap = -1;
    if (!bind_columns(vs, orows, ROW_COLUMNS, N_ROW_COLUMNS, r, cap, "rows") ||
        !bind_columns(vs, otable, TABLE_COLUMNS, 2, tb, tcap, "table") ||
        !(*meta = view_of(vs, ometa, "l", 1, "meta", &nmeta)))
        return 0;
    if (nmeta != N_META || *tcap <= 0 || (*tcap & (*tcap - 1)) != 0 || (*meta)[M_ROWS] > *cap) {
        PyErr_SetString(PyExc_ValueError, "meta or table size wrong (the table must be a power of two)");
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(stream_doc,
"stream(rows, table, bloom_words, bloom_layers, meta, done, deferred, packets, payload, data, expect,\n"
"       options) -> (int, int)\n"
"--\n\n"
"Run a packet batch's columns (PACKET_COLUMNS order) through the open connections; rows:\n"
"ROW_COLUMNS, table: TABLE_COLUMNS, bloom_*: the spilled filter, payload: PAYLOAD_COLUMNS over\n"
"the bytes `data` (zero rows: no payload), expect: the expectation table (protocols/_expect.h),\n"
"options: (tcp_ns, udp_ns, active_ns, vlan_key). Returns (finished, deferred): the finished rows'\n"
"indices are in done[:finished] (on the free list for the next call), the deferred packets' in\n"
"deferred[:deferred]; finished is -1 when rows ran out (the caller guarantees free rows >= packets).");

static PyObject *
stream(PyObject *self, PyObject *args)
{
    PyObject *orows, *otable, *owords, *olayers, *ometa, *odone, *odef, *opk, *opl, *odata, *oexp, *oopt;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOO", &orows, &otable, &owords, &olayers, &ometa, &odone, &odef, &opk, &opl,
                          &odata, &oexp, &oopt))
        return NULL;
    stream_t s;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    Py_ssize_t ndone, ndef;
    int64_t *const opts[] = {&s.tcp_ns, &s.udp_ns, &s.active_ns, &s.vlan_key};
    s.n = -1;
    s.n_deferred = 0;
    if (!bind_state(&vs, orows, otable, ometa, &s.r, &s.tb, &s.meta, &s.cap, &s.tcap) ||
        !bind_bloom(&vs, owords, olayers, &s.sp) ||
        !(s.done = view_of(&vs, odone, "l", 1, "done", &ndone)) ||
        !(s.deferred = view_of(&vs, odef, "l", 1, "deferred", &ndef)) ||
        !bind_columns(&vs, opk, PACKET_COLUMNS, N_PACKET_COLUMNS, &s.p, &s.n, "packets") ||
        !bind_payload(&vs, opl, odata, s.n, &s.pl, &s.n_pl, &s.data, &s.n_data) || !bind_expect(&vs, oexp, &s.expect) ||
        !bind_options(oopt, STREAM_OPTIONS, opts, 4, "options"))
        goto out;
    /* every packet may open a connection: room for all, and a table at most half full */
    if (ndone < s.n || ndef < s.n || s.meta[M_FREE] + (s.cap - s.meta[M_ROWS]) < s.n || 2 * (s.meta[M_FILLED] + s.n) > s.tcap) {
        PyErr_SetString(PyExc_ValueError, "stream(): no room for the batch");
        goto out;
    }
    Py_ssize_t n_done;
    Py_BEGIN_ALLOW_THREADS
    n_done = run_stream(&s);
    if (n_done > 0) { /* rows finished here are reusable from the next call on */
        for (Py_ssize_t j = 0; j < n_done; j++)
            s.r.freelist[s.meta[M_FREE]++] = s.done[j];
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nn", n_done, s.n_deferred);
out:
    views_release(&vs);
    return result;
}

#define SPILL_AHEAD 8 /* rows ahead whose cache lines spill() fetches */

/* Slot of the table holding row c's key (the key is present: c is open). */
static inline Py_ssize_t
slot_of(const uint64_t *tkeys, const int64_t *trow, Py_ssize_t tcap, uint64_t h, int64_t c)
{
    Py_ssize_t mask = tcap - 1, i = (Py_ssize_t)(h & (uint64_t)mask);
    while (trow[i] != EMPTY && !(trow[i] == c && tkeys[i] == h))
        i = (i + 1) & mask;
    return trow[i] == EMPTY ? -1 : i;
}

PyDoc_STRVAR(evict_doc,
"evict(rows, table, meta, gone, options) -> int\n"
"--\n\n"
"Finish the open rows no later packet can join (deadline <= meta[3], the newest packet\n"
"time): removes their keys and frees the rows (reused from the next stream() call on);\n"
"returns how many, their indices in gone[:n] in row order. options: (tcp_ns, udp_ns).");

static PyObject *
evict(PyObject *self, PyObject *args)
{
    PyObject *orows, *otable, *ometa, *ogone, *oopt;
    if (!PyArg_ParseTuple(args, "OOOOO", &orows, &otable, &ometa, &ogone, &oopt))
        return NULL;
    rows_t r;
    table_t tb;
    int64_t *meta, *gone, tcp_ns, udp_ns;
    int64_t *const opts[] = {&tcp_ns, &udp_ns};
    Py_ssize_t cap, tcap, ngone;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    if (!bind_state(&vs, orows, otable, ometa, &r, &tb, &meta, &cap, &tcap) ||
        !(gone = view_of(&vs, ogone, "l", 1, "gone", &ngone)) || !bind_options(oopt, STREAM_OPTIONS, opts, 2, "options"))
        goto out;
    if (ngone < cap) {
        PyErr_SetString(PyExc_ValueError, "evict(): gone is shorter than the rows");
        goto out;
    }
    Py_ssize_t n_gone = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++) {
        if (!r.used[c] || TM(r, c, T_DEADLINE) > meta[M_TMAX])
            continue;
        Py_ssize_t slot = slot_of(tb.keys, tb.row, tcap, r.K[c].hash, c);
        if (slot >= 0)
            tb.row[slot] = DELETED;
        r.used[c] = 0;
        gone[n_gone++] = c;
        r.freelist[meta[M_FREE]++] = c;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(n_gone);
out:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(spill_doc,
"spill(rows, table, bloom_words, bloom_layers, meta, which) -> None\n"
"--\n\n"
"Take the open rows `which` out (the caller has copied them to disk): their keys leave\n"
"the table and enter the spilled filter's last layer; the rows are freed.");

static PyObject *
spill(PyObject *self, PyObject *args)
{
    PyObject *orows, *otable, *owords, *olayers, *ometa, *owhich;
    if (!PyArg_ParseTuple(args, "OOOOOO", &orows, &otable, &owords, &olayers, &ometa, &owhich))
        return NULL;
    rows_t r;
    table_t tb;
    bloom_t sp;
    int64_t *meta, *which;
    Py_ssize_t cap, tcap, n;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    if (!bind_state(&vs, orows, otable, ometa, &r, &tb, &meta, &cap, &tcap) ||
        !bind_bloom(&vs, owords, olayers, &sp) || !(which = view_of(&vs, owhich, "l", 0, "which", &n)))
        goto out;
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t c = which[j];
        if (c < 0 || c >= meta[M_ROWS] || !r.used[c]) {
            PyErr_Format(PyExc_ValueError, "spill(): row %lld is not open", (long long)c);
            goto out;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n; j++) {
        /* each row costs cache misses at random places (its key, table slot and filter block):
         * fetched a few rows ahead, they overlap */
        if (j + 2 * SPILL_AHEAD < n)
            __builtin_prefetch(&r.K[which[j + 2 * SPILL_AHEAD]]);
        if (j + SPILL_AHEAD < n) {
            uint64_t ha = r.K[which[j + SPILL_AHEAD]].hash;
            Py_ssize_t i = (Py_ssize_t)(ha & (uint64_t)(tcap - 1));
            __builtin_prefetch(&tb.row[i], 1);
            __builtin_prefetch(&tb.keys[i]);
            __builtin_prefetch(bloom_block(&sp, sp.n_layers - 1, ha), 1);
        }
        int64_t c = which[j];
        uint64_t h = r.K[c].hash;
        Py_ssize_t slot = slot_of(tb.keys, tb.row, tcap, h, c);
        if (slot >= 0)
            tb.row[slot] = DELETED;
        r.used[c] = 0;
        r.freelist[meta[M_FREE]++] = c;
        bloom_add(&sp, h);
        meta[M_SFILLED]++;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
out:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(remember_doc,
"remember(bloom_words, bloom_layers, hashes, seen, add) -> int\n"
"--\n\n"
"seen[j] = 1 when key hashes[j] (uint64) is in a layer of bloom_layers over bloom_words,\n"
"else 0; with add, the keys not seen are added to the last layer as they come. Returns how\n"
"many were not seen.");

static PyObject *
remember(PyObject *self, PyObject *args)
{
    PyObject *owords, *olayers, *ohashes, *oseen;
    int add;
    if (!PyArg_ParseTuple(args, "OOOOp", &owords, &olayers, &ohashes, &oseen, &add))
        return NULL;
    bloom_t sp;
    const uint64_t *hashes;
    uint8_t *seen;
    Py_ssize_t n, n_seen, fresh = 0;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    if (!bind_bloom(&vs, owords, olayers, &sp) || !(hashes = view_of(&vs, ohashes, "L", 0, "hashes", &n)) ||
        !(seen = view_of(&vs, oseen, "B", 1, "seen", &n_seen)))
        goto out;
    if (n_seen != n) {
        PyErr_SetString(PyExc_ValueError, "remember(): seen must have one item per hash");
        goto out;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        seen[j] = (uint8_t)bloom_has(&sp, hashes[j]);
        if (!seen[j]) {
            fresh++;
            if (add)
                bloom_add(&sp, hashes[j]);
        }
    }
    result = PyLong_FromSsize_t(fresh);
out:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(times_doc,
"times(rows, which, options) -> None\n"
"--\n\n"
"The `times` column of rows which[j] from the rows themselves (rows loaded from disk; the\n"
"kernel keeps it for the rows it runs packets through). options: (tcp_ns, udp_ns).");

static PyObject *
times(PyObject *self, PyObject *args)
{
    PyObject *orows, *owhich, *oopt;
    if (!PyArg_ParseTuple(args, "OOO", &orows, &owhich, &oopt))
        return NULL;
    rows_t r;
    const int64_t *which;
    int64_t tcp_ns, udp_ns;
    int64_t *const opts[] = {&tcp_ns, &udp_ns};
    Py_ssize_t cap = -1, n;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    if (!bind_columns(&vs, orows, ROW_COLUMNS, N_ROW_COLUMNS, &r, &cap, "rows") ||
        !(which = view_of(&vs, owhich, "l", 0, "which", &n)) || !bind_options(oopt, STREAM_OPTIONS, opts, 2, "options"))
        goto out;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (which[j] < 0 || which[j] >= cap) {
            PyErr_Format(PyExc_ValueError, "times(): no row %lld", (long long)which[j]);
            goto out;
        }
    }
    for (Py_ssize_t j = 0; j < n; j++)
        keep_times(&r, which[j], tcp_ns, udp_ns);
    result = Py_NewRef(Py_None);
out:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(rebuild_doc,
"rebuild(rows, table, meta) -> None\n"
"--\n\n"
"Insert the key of every open row into an empty table (rows all -1); sets meta[2].");

static PyObject *
rebuild(PyObject *self, PyObject *args)
{
    PyObject *orows, *otable, *ometa;
    if (!PyArg_ParseTuple(args, "OOO", &orows, &otable, &ometa))
        return NULL;
    rows_t r;
    table_t tb;
    int64_t *meta;
    Py_ssize_t cap, tcap, open = 0;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    if (!bind_state(&vs, orows, otable, ometa, &r, &tb, &meta, &cap, &tcap))
        goto out;
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++)
        open += r.used[c] != 0;
    if (2 * open > tcap) {
        PyErr_SetString(PyExc_ValueError, "rebuild(): table too small");
        goto out;
    }
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++) {
        if (!r.used[c])
            continue;
        int found;
        uint64_t h = r.K[c].hash;
        Py_ssize_t slot = probe(tb.keys, tb.row, tcap, h, &found);
        tb.keys[slot] = h;
        tb.row[slot] = c;
    }
    meta[M_FILLED] = open;
    result = Py_NewRef(Py_None);
out:
    views_release(&vs);
    return result;
}

static PyMethodDef methods[] = {
    {"stream", stream, METH_VARARGS, stream_doc},
    {"evict", evict, METH_VARARGS, evict_doc},
    {"rebuild", rebuild, METH_VARARGS, rebuild_doc},
    {"spill", spill, METH_VARARGS, spill_doc},
    {"remember", remember, METH_VARARGS, remember_doc},
    {"times", times, METH_VARARGS, times_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._stream",
    "One-pass flow building over a hash table of open connections (see flowkit.flows.stream).", -1, methods,
};

PyMODINIT_FUNC
PyInit__stream(void)
{
    init_likely_table();
    static const int_const_t consts[] = {{"N_META", N_META}, {"EMPTY", EMPTY}, {"BLOCK_WORDS", BLOCK_WORDS}};
    PyObject *m = with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
    PyObject *names[] = {column_names(ROW_COLUMNS, N_ROW_COLUMNS), column_names(TABLE_COLUMNS, 2),
                         column_names(PAYLOAD_COLUMNS, 2)};
    if (!m || !names[0] || !names[1] || !names[2] || PyModule_AddObjectRef(m, "ROW_COLUMNS", names[0]) < 0 ||
        PyModule_AddObjectRef(m, "TABLE_COLUMNS", names[1]) < 0 ||
        PyModule_AddObjectRef(m, "PAYLOAD_COLUMNS", names[2]) < 0) {
        Py_XDECREF(m);
        m = NULL;
    }
    for (int j = 0; j < 3; j++)
        Py_XDECREF(names[j]);
    return m;
}
