/* One-pass flow building for flowkit.flows(): packet batch columns straight into open
 * connections held in a hash table (stream.py owns the arrays).
 *
 * Why a second driver next to _machine.c: the mergeable path re-keys every batch with
 * sorts and set operations (np.unique, np.isin, a sorted open-row table) because merging
 * needs per-key bookkeeping; a single pass over one capture needs none of that. Here each
 * packet finds its connection by its 64-bit key in an open-addressing table, so a batch
 * costs one pass and no Python per batch beyond the call. Keys, sides and orientation are
 * computed exactly as keys.py / ports.py / _machine.c do; stream.py's tests compare the
 * two paths.
 *
 * Rows: C/H/K hold connections; `used` marks open ones; freed rows are reused (stack
 * `free`). Table: tkeys/trow, linear probing; trow -1 empty, -2 deleted. meta: [0] rows
 * in use or freed (high-water mark), [1] free rows, [2] table slots not empty, [3] newest
 * packet time seen.
 */
#include "_conn.h"

#define EMPTY (-1)
#define DELETED (-2)
enum { M_ROWS, M_FREE, M_FILLED, M_TMAX, N_META };

static inline uint64_t
be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ports.py's group_address: broadcast 255.255.255.255, 224.0.0.0/4, ff00::/8. */
static inline int
group_address(uint64_t hi, uint64_t lo)
{
    if (hi == 0 && (lo >> 32) == 0xFFFF) {
        uint64_t a4 = lo & 0xFFFFFFFFULL;
        return a4 == 0xFFFFFFFFULL || (a4 >> 28) == 0xE;
    }
    return (hi >> 56) == 0xFF;
}

typedef struct {
    int64_t *C, *K, *meta, *freelist, *trow, *done;
    uint8_t *H, *used;
    uint64_t *tkeys;
    const uint8_t *tcp_likely, *udp_likely;
    const int64_t *ts;
    const uint8_t *src, *dst, *proto, *ipver, *status;
    const uint16_t *sport, *dport, *vlan, *ivlan, *flags, *win, *udplen;
    const uint32_t *seq, *ack, *paylen, *iplen;
    Py_ssize_t cap, tcap, n;
    int64_t tcp_ns, udp_ns, active_ns;
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

/* Returns the number of rows finished (written to done), or -1 when out of rows. */
static Py_ssize_t
run_stream(stream_t *s)
{
    int64_t *C = s->C, *meta = s->meta;
    Py_ssize_t n_done = 0;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        int64_t proto = s->proto[i];
        if (s->status[i] != 0 || (proto != 6 && proto != 17))
            continue; /* not a flow packet (keys.packet_columns): counted in the ledger only */
        const uint8_t *sa = s->src + i * 16, *da = s->dst + i * 16;
        uint64_t shi = be64(sa), slo = be64(sa + 8), dhi = be64(da), dlo = be64(da + 8);
        int64_t sport = s->sport[i], dport = s->dport[i];
        int64_t side = shi > dhi || (shi == dhi && (slo > dlo || (slo == dlo && sport > dport)));
        int64_t key[N_KEY];
        key[K_AHI] = (int64_t)(side ? dhi : shi);
        key[K_ALO] = (int64_t)(side ? dlo : slo);
        key[K_BHI] = (int64_t)(side ? shi : dhi);
        key[K_BLO] = (int64_t)(side ? slo : dlo);
        key[K_APORT] = side ? dport : sport;
        key[K_BPORT] = side ? sport : dport;
        key[K_PROTO] = proto;
        key[K_VLAN] = s->vlan[i];
        key[K_IVLAN] = s->ivlan[i];
        key[K_IPVER] = s->ipver[i];
        uint64_t h = mix(mix(mix(mix(0, (uint64_t)key[K_AHI]), (uint64_t)key[K_ALO]), (uint64_t)key[K_BHI]),
                         (uint64_t)key[K_BLO]);
        h = mix(h, (uint64_t)((key[K_APORT] << 16) | key[K_BPORT]));
        h = mix(h, ((uint64_t)proto << 32) | ((uint64_t)key[K_VLAN] << 16) | (uint64_t)key[K_IVLAN]);
        key[K_HASH] = (int64_t)h;

        int64_t t = s->ts[i], flags = s->flags[i], seq = s->seq[i];
        /* UDP: Zeek sums the UDP length field minus the header, not the IP payload */
        int64_t plen = proto == 17 ? (s->udplen[i] > 8 ? s->udplen[i] - 8 : 0) : (int64_t)s->paylen[i];
        if (t > meta[M_TMAX])
            meta[M_TMAX] = t;

        int found;
        Py_ssize_t slot = probe(s->tkeys, s->trow, s->tcap, h, &found);
        int64_t c = found ? s->trow[slot] : -1, keep_orig = -1;
        if (c >= 0 && starts_new(ROW(c), t, proto, flags, seq, s->tcp_ns, s->udp_ns, &keep_orig)) {
            s->used[c] = 0;
            s->done[n_done++] = c; /* freed after the caller has copied it out */
            c = -1;
        }
        if (c < 0) {
            int64_t row;
            if (meta[M_FREE] > 0)
                row = s->freelist[--meta[M_FREE]];
            else if (meta[M_ROWS] < s->cap)
                row = meta[M_ROWS]++;
            else
                return -1;
            const uint8_t *lk_tab = proto == 6 ? s->tcp_likely : s->udp_likely;
            uint8_t lk[N_LIKELY] = {lk_tab[key[K_APORT]], lk_tab[key[K_BPORT]],
                                    (uint8_t)group_address((uint64_t)key[K_AHI], (uint64_t)key[K_ALO]),
                                    (uint8_t)group_address((uint64_t)key[K_BHI], (uint64_t)key[K_BLO])};
            open_conn(C, s->H, s->K, key, lk, row, -1, t, side, proto, flags, keep_orig, 0, s->active_ns);
            s->used[row] = 1;
            if (!found) {
                if (s->trow[slot] == EMPTY)
                    meta[M_FILLED]++;
                s->tkeys[slot] = h;
            }
            s->trow[slot] = row;
            c = row;
        }
        feed(C, s->H, c, side, t, flags, seq, s->ack[i], s->win[i], plen, s->iplen[i], proto);
    }
    return n_done;
}

/* Argument list of a call: (object, format, writable, name, pointer, item count). */
typedef struct {
    const char *fmt;
    int writable;
    const char *name;
    void **ptr;
    Py_ssize_t count;
} arg_t;

static int
take_args(views_t *vs, PyObject *const *args, arg_t *spec, int n)
{
    for (int j = 0; j < n; j++)
        if (!(*spec[j].ptr = view_of(vs, args[j], spec[j].fmt, spec[j].writable, spec[j].name, &spec[j].count)))
            return 0;
    return 1;
}

static int
ints(PyObject *const *args, int64_t **out, int n)
{
    for (int j = 0; j < n; j++) {
        long long v = PyLong_AsLongLong(args[j]);
        if (v == -1 && PyErr_Occurred())
            return 0;
        *out[j] = v;
    }
    return 1;
}

PyDoc_STRVAR(stream_doc,
"stream(C, H, K, used, free, meta, tkeys, trow, done, tcp_likely, udp_likely,\n"
"       ts, src_ip, dst_ip, src_port, dst_port, ip_proto, vlan, inner_vlan, ip_version, status,\n"
"       tcp_flags, seq, ack, window, payload_len, udp_len, ip_len, tcp_ns, udp_ns, active_ns)\n"
"--\n\n"
"Run a packet batch's columns through the open connections; returns how many rows\n"
"finished (their indices in done[:n]; they are on the free list for the next call), or\n"
"-1 when rows ran out (the caller guarantees free rows >= packets, so never in use).");

static PyObject *
stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 31) {
        PyErr_Format(PyExc_TypeError, "stream() takes 31 arguments (%zd given)", nargs);
        return NULL;
    }
    stream_t s;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    arg_t spec[] = {
        {"l", 1, "C", (void **)&s.C}, {"B", 1, "H", (void **)&s.H}, {"l", 1, "K", (void **)&s.K},
        {"B", 1, "used", (void **)&s.used}, {"l", 1, "free", (void **)&s.freelist}, {"l", 1, "meta", (void **)&s.meta},
        {"L", 1, "tkeys", (void **)&s.tkeys}, {"l", 1, "trow", (void **)&s.trow}, {"l", 1, "done", (void **)&s.done},
        {"B", 0, "tcp_likely", (void **)&s.tcp_likely}, {"B", 0, "udp_likely", (void **)&s.udp_likely},
        {"l", 0, "ts", (void **)&s.ts}, {"B", 0, "src_ip", (void **)&s.src}, {"B", 0, "dst_ip", (void **)&s.dst},
        {"H", 0, "src_port", (void **)&s.sport}, {"H", 0, "dst_port", (void **)&s.dport},
        {"B", 0, "ip_proto", (void **)&s.proto}, {"H", 0, "vlan", (void **)&s.vlan},
        {"H", 0, "inner_vlan", (void **)&s.ivlan}, {"B", 0, "ip_version", (void **)&s.ipver},
        {"B", 0, "status", (void **)&s.status}, {"H", 0, "tcp_flags", (void **)&s.flags},
        {"I", 0, "seq", (void **)&s.seq}, {"I", 0, "ack", (void **)&s.ack}, {"H", 0, "window", (void **)&s.win},
        {"I", 0, "payload_len", (void **)&s.paylen}, {"H", 0, "udp_len", (void **)&s.udplen},
        {"I", 0, "ip_len", (void **)&s.iplen},
    };
    enum { N_ARRAYS = sizeof spec / sizeof spec[0], FIRST_PACKET = 11 };
    int64_t *opts[] = {&s.tcp_ns, &s.udp_ns, &s.active_ns};
    if (!take_args(&vs, args, spec, N_ARRAYS) || !ints(args + N_ARRAYS, opts, 3))
        goto out;
    s.cap = spec[0].count / NCOL;
    s.tcap = spec[6].count;
    s.n = spec[FIRST_PACKET].count;
    int ok = spec[0].count == s.cap * NCOL && spec[1].count == s.cap * HMAX && spec[2].count == s.cap * N_KEY &&
             spec[3].count == s.cap && spec[4].count == s.cap && spec[5].count == N_META &&
             spec[7].count == s.tcap && s.tcap > 0 && (s.tcap & (s.tcap - 1)) == 0 && spec[8].count >= s.n &&
             spec[9].count == 65536 && spec[10].count == 65536 && spec[12].count == 16 * s.n &&
             spec[13].count == 16 * s.n;
    for (int j = FIRST_PACKET + 3; j < N_ARRAYS; j++)
        ok = ok && spec[j].count == s.n;
    /* every packet may open a connection: room for all, and a table at most half full */
    ok = ok && s.meta[M_FREE] + (s.cap - s.meta[M_ROWS]) >= s.n && 2 * (s.meta[M_FILLED] + s.n) <= s.tcap;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "stream(): array sizes disagree or no room for the batch");
        goto out;
    }
    Py_ssize_t n_done;
    Py_BEGIN_ALLOW_THREADS
    n_done = run_stream(&s);
    if (n_done > 0) { /* rows finished here are reusable from the next call on */
        for (Py_ssize_t j = 0; j < n_done; j++)
            s.freelist[s.meta[M_FREE]++] = s.done[j];
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(n_done);
out:
    views_release(&vs);
    return result;
}

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
"evict(C, K, used, free, meta, tkeys, trow, gone, tcp_ns, udp_ns)\n"
"--\n\n"
"Finish the open rows no later packet can join (deadline <= meta[3], the newest packet\n"
"time): removes their keys and frees the rows (reused from the next stream() call on);\n"
"returns how many, their indices in gone[:n] in row order.");

static PyObject *
evict(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "evict() takes 10 arguments (%zd given)", nargs);
        return NULL;
    }
    int64_t *C, *K, *freelist, *meta, *trow, *gone, tcp_ns, udp_ns;
    uint8_t *used;
    uint64_t *tkeys;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    arg_t spec[] = {
        {"l", 0, "C", (void **)&C}, {"l", 0, "K", (void **)&K}, {"B", 1, "used", (void **)&used},
        {"l", 1, "free", (void **)&freelist}, {"l", 1, "meta", (void **)&meta}, {"L", 0, "tkeys", (void **)&tkeys},
        {"l", 1, "trow", (void **)&trow}, {"l", 1, "gone", (void **)&gone},
    };
    int64_t *opts[] = {&tcp_ns, &udp_ns};
    if (!take_args(&vs, args, spec, 8) || !ints(args + 8, opts, 2))
        goto out;
    Py_ssize_t cap = spec[2].count, tcap = spec[5].count;
    if (spec[0].count != cap * NCOL || spec[1].count != cap * N_KEY || spec[3].count != cap ||
        spec[4].count != N_META || spec[6].count != tcap || spec[7].count < cap || tcap <= 0 ||
        (tcap & (tcap - 1)) != 0 || meta[M_ROWS] > cap) {
        PyErr_SetString(PyExc_ValueError, "evict(): array sizes disagree");
        goto out;
    }
    Py_ssize_t n_gone = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++) {
        if (!used[c] || deadline(ROW(c), tcp_ns, udp_ns) > meta[M_TMAX])
            continue;
        Py_ssize_t slot = slot_of(tkeys, trow, tcap, (uint64_t)K[c * N_KEY + K_HASH], c);
        if (slot >= 0)
            trow[slot] = DELETED;
        used[c] = 0;
        gone[n_gone++] = c;
        freelist[meta[M_FREE]++] = c;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(n_gone);
out:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(rebuild_doc,
"rebuild(K, used, meta, tkeys, trow)\n"
"--\n\n"
"Insert the key of every open row into an empty table (trow all -1); sets meta[2].");

static PyObject *
rebuild(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "rebuild() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    int64_t *K, *meta, *trow;
    uint8_t *used;
    uint64_t *tkeys;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    arg_t spec[] = {
        {"l", 0, "K", (void **)&K}, {"B", 0, "used", (void **)&used}, {"l", 1, "meta", (void **)&meta},
        {"L", 1, "tkeys", (void **)&tkeys}, {"l", 1, "trow", (void **)&trow},
    };
    if (!take_args(&vs, args, spec, 5))
        goto out;
    Py_ssize_t cap = spec[1].count, tcap = spec[3].count, open = 0;
    if (spec[0].count != cap * N_KEY || spec[2].count != N_META || spec[4].count != tcap || tcap <= 0 ||
        (tcap & (tcap - 1)) != 0 || meta[M_ROWS] > cap) {
        PyErr_SetString(PyExc_ValueError, "rebuild(): array sizes disagree");
        goto out;
    }
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++)
        open += used[c] != 0;
    if (2 * open > tcap) {
        PyErr_SetString(PyExc_ValueError, "rebuild(): table too small");
        goto out;
    }
    for (Py_ssize_t c = 0; c < meta[M_ROWS]; c++) {
        if (!used[c])
            continue;
        int found;
        uint64_t h = (uint64_t)K[c * N_KEY + K_HASH];
        Py_ssize_t slot = probe(tkeys, trow, tcap, h, &found);
        tkeys[slot] = h;
        trow[slot] = c;
    }
    meta[M_FILLED] = open;
    result = Py_NewRef(Py_None);
out:
    views_release(&vs);
    return result;
}

static PyMethodDef methods[] = {
    {"stream", (PyCFunction)(void (*)(void))stream, METH_FASTCALL, stream_doc},
    {"evict", (PyCFunction)(void (*)(void))evict, METH_FASTCALL, evict_doc},
    {"rebuild", (PyCFunction)(void (*)(void))rebuild, METH_FASTCALL, rebuild_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._stream",
    "One-pass flow building over a hash table of open connections (see flowkit.flows.stream).", -1, methods,
};

PyMODINIT_FUNC
PyInit__stream(void)
{
    static const int_const_t consts[] = {{"N_META", N_META}, {"EMPTY", EMPTY}};
    return with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
}
