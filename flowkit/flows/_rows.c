/* Connection rows of the state machine into flow-table columns (rows.py wraps them as
 * Arrow arrays without copying).
 *
 * Why C: every output column is a per-row function of one connection row (roles,
 * Zeek's payload sizes, conn_state, flow_id, duration, null marks, local networks), and
 * computing ~60 columns with numpy costs dozens of passes and temporaries over the rows;
 * one pass per row writes each value once, in its column's final type. The rules are
 * Zeek's, documented in docs/semantics.md; rows.py names the columns.
 */
#include "_columns.h"
#include "_layout.h"

/* Output columns: each in its Arrow type (rows.py wraps the arrays as Arrow buffers, no
 * copy), named as the table's columns but for the addresses (16 big-endian bytes a row, for
 * decode/_text.c), `svc` (the confirmed-service bits, named in rows.py) and two arrays of
 * several columns one after the other: `flags` (the originator's 8 flag counts in FLAGS
 * order, then the responder's) and `parents` (the parent slots, named SLOTS). */
typedef struct {
    uint64_t *flow_id;
    int64_t *ts0, *tsend;
    double *duration;
    uint8_t *proto, *ipver, *oaddr, *raddr, *eaddr;
    uint16_t *oport, *rport, *vlan, *ivlan;
    uint64_t *opkts, *rpkts, *oipb, *ripb, *osize, *rsize, *missed, *key;
    uint8_t *state;
    uint32_t *flags;
    int64_t *synts, *synlast, *synackts, *ackts;
    uint32_t *syncnt, *errs, *svc;
    uint8_t *etype, *ecode;
    int64_t *par;
} out_t;

#define OUT(name, member, fmt, width) {name, fmt, width, offsetof(out_t, member), 1}
static const column_t COLUMNS[] = {
    OUT("flow_id", flow_id, "L", 1), OUT("ts_start", ts0, "l", 1), OUT("ts_end", tsend, "l", 1),
    OUT("duration", duration, "d", 1), OUT("ip_proto", proto, "B", 1), OUT("ip_version", ipver, "B", 1),
    OUT("src_addr", oaddr, "B", 16), OUT("src_port", oport, "H", 1), OUT("dst_addr", raddr, "B", 16),
    OUT("dst_port", rport, "H", 1), OUT("src_pkts", opkts, "L", 1), OUT("dst_pkts", rpkts, "L", 1),
    OUT("src_ip_bytes", oipb, "L", 1), OUT("dst_ip_bytes", ripb, "L", 1), OUT("src_payload_bytes", osize, "L", 1),
    OUT("dst_payload_bytes", rsize, "L", 1), OUT("conn_state", state, "B", 1), OUT("missed_bytes", missed, "L", 1),
    OUT("flags", flags, "I", 16), OUT("syn_ts", synts, "l", 1), OUT("syn_last_ts", synlast, "l", 1),
    OUT("synack_ts", synackts, "l", 1), OUT("ack_ts", ackts, "l", 1), OUT("syn_count", syncnt, "I", 1),
    OUT("icmp_errors", errs, "I", 1), OUT("icmp_error_type", etype, "B", 1), OUT("icmp_error_code", ecode, "B", 1),
    OUT("icmp_error_addr", eaddr, "B", 16), OUT("vlan", vlan, "H", 1), OUT("inner_vlan", ivlan, "H", 1),
    OUT("svc", svc, "I", 1), OUT("_key", key, "L", 1), OUT("parents", par, "l", N_PAR * PAR_WIDTH),
};
#define N_OUT ((int)(sizeof COLUMNS / sizeof COLUMNS[0]))

/* fl[] order of side_t (_conn.h's FLAG_BITS) */
static const char *FLAGS[8] = {"syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr"};
static const char *SLOTS[N_PAR * PAR_WIDTH] = {
    "_p0_key", "_p0_first", "_p0_last", "_p1_key", "_p1_first", "_p1_last",
    "_p2_key", "_p2_first", "_p2_last", "_p3_key", "_p3_first", "_p3_last",
};
/* SLOTS names N_PAR parent slots */
_Static_assert(N_PAR == 4 && PAR_WIDTH == 3, "SLOTS names four parent slots of three fields");

/* Bitmaps, one row of `bits` each: validity (set: not null) of the time columns (null when
 * negative: none) and of the ICMP error columns (null without an error), and the booleans. */
enum { B_TS0, B_TSEND, B_SYNTS, B_SYNLAST, B_SYNACKTS, B_ACKTS, B_ERROR, B_LOCAL_ORIG, B_LOCAL_RESP, B_PREFIX,
       B_ENCLOSES, N_BITS };
static const char *BITMAPS[N_BITS] = {"ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts",
                                      "icmp_error", "local_orig", "local_resp", "_prefix", "_encloses"};

/* conn_state codes: index into STATES */
enum { OTH, REJ, RSTRH, RSTR, RSTOS0, RSTO, SF, SH, S2, SHR, S3, S0, S1, N_STATES };
static const char *STATES[N_STATES] = {"OTH", "REJ", "RSTRH", "RSTR", "RSTOS0", "RSTO", "SF", "SH", "S2",
                                       "SHR", "S3", "S0", "S1"};

/* Zeek's endpoint size (TCP_Endpoint::Size) as payload bytes; UDP: the summed UDP lengths. */
static inline int64_t
payload_size(const side_t *E, const side_t *P, int tcp)
{
    if (!tcp)
        return E->udpb;
    int64_t s = E->lastrel > E->ackrel ? E->lastrel : E->ackrel;
    if (s != 0)
        s -= 1;
    if (E->fins > 0 && s != 0)
        s -= 1;
    /* a half-open connection discovered and aborted reports no size */
    if (E->prev == SYN_SENT && E->state == RESET && P->state == INACTIVE)
        s = 0;
    return s > 0 ? s : 0;
}

/* History matches ^?S[^HAFGIQ]*R.* (conn/main.zeek's RSTOS0 test). */
static int
rstos0_history(const uint8_t *h)
{
    int i = 0;
    if (h[i] == '^')
        i++;
    if (h[i] != 'S')
        return 0;
    for (i++; i < HMAX && h[i]; i++) {
        switch (h[i]) {
        case 'R': return 1;
        case 'H': case 'A': case 'F': case 'G': case 'I': case 'Q': return 0;
        }
    }
    return 0;
}

/* Zeek's conn_state() from conn/main.zeek; UDP's PARTIAL stands for UDP_ACTIVE; every
 * protocol but TCP and UDP is OTH. */
static int
conn_state(int64_t os, int64_t rs, int64_t proto, int64_t osize, int64_t rsize, const uint8_t *hist)
{
    int tcp = proto == 6;
    if (!tcp && proto != 17)
        return OTH;
    if (!tcp) {
        int uo = os == PARTIAL, ur = rs == PARTIAL;
        return uo && ur ? SF : uo ? S0 : ur ? SHR : OTH;
    }
    int o_in = os == INACTIVE || os == PARTIAL, r_in = rs == INACTIVE || rs == PARTIAL;
    if (rs == RESET) {
        if (os == SYN_SENT || os == SYN_ACK_SENT || (os == RESET && osize == 0 && rsize == 0))
            return REJ;
        return o_in ? RSTRH : RSTR;
    }
    if (os == RESET)
        return r_in ? (rstos0_history(hist) ? RSTOS0 : OTH) : RSTO;
    if (rs == CLOSED && os == CLOSED)
        return SF;
    if (os == CLOSED)
        return r_in ? SH : S2;
    if (rs == CLOSED)
        return o_in ? SHR : S3;
    if (os == SYN_SENT && rs == INACTIVE)
        return S0;
    if (os == ESTABLISHED && rs == ESTABLISHED)
        return S1;
    return OTH;
}

/* Is the address (hi, lo) inside one of the m networks of `nets` (rows of prefix hi, lo, mask
 * hi, lo: flows/local.py's LocalNets.words)? */
static inline int
in_nets(uint64_t hi, uint64_t lo, const uint64_t *nets, Py_ssize_t m)
{
    for (Py_ssize_t j = 0; j < m; j++, nets += 4)
        if ((hi & nets[2]) == nets[0] && (lo & nets[3]) == nets[1])
            return 1;
    return 0;
}

static inline void
put_addr(uint8_t *to, uint64_t hi, uint64_t lo)
{
    hi = __builtin_bswap64(hi); /* big-endian: the address's byte order */
    lo = __builtin_bswap64(lo);
    memcpy(to, &hi, 8);
    memcpy(to + 8, &lo, 8);
}

/* Length of a NUL-terminated text of at most `width` bytes. */
static inline int32_t
text_len(const uint8_t *t, int width)
{
    const uint8_t *end = memchr(t, 0, (size_t)width);
    return end ? (int32_t)(end - t) : width;
}

/* The texts of n rows of `width` bytes (ending at the first NUL) as Arrow string data: fills
 * `off` (n + 1) and returns the bytes. */
static PyObject *
texts(const uint8_t *rows, size_t stride, int width, Py_ssize_t n, int32_t *off)
{
    int64_t pos = 0;
    Py_BEGIN_ALLOW_THREADS
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        pos += text_len(rows + i * stride, width);
        off[i + 1] = (int32_t)pos;
    }
    Py_END_ALLOW_THREADS
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)pos);
    if (!data)
        return NULL;
    char *to = PyBytes_AS_STRING(data);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        memcpy(to + off[i], rows + i * stride, (size_t)(off[i + 1] - off[i]));
    Py_END_ALLOW_THREADS
    return data;
}

#define SETBIT(b, i, v) (bits[(Py_ssize_t)(b) * nbytes + ((i) >> 3)] |= (uint8_t)((v) != 0) << ((i) & 7))

static PyObject *
columns(PyObject *self, PyObject *args)
{
    PyObject *oC, *oH, *oK, *onets, *oout, *obits, *ohoff, *onoff;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &oC, &oH, &oK, &onets, &oout, &obits, &ohoff, &onoff))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t nc, nh, nk, nn, nb, nho, nno;
    const conn_t *C = view_of(&vs, oC, "B", 0, "C", &nc);
    const uint8_t *H = C ? view_of(&vs, oH, "B", 0, "H", &nh) : NULL;
    const conn_key_t *K = H ? view_of(&vs, oK, "B", 0, "K", &nk) : NULL;
    const uint64_t *nets = K ? view_of(&vs, onets, "L", 0, "nets", &nn) : NULL;
    uint8_t *bits = nets ? view_of(&vs, obits, "B", 1, "bits", &nb) : NULL;
    int32_t *hoff = bits ? view_of(&vs, ohoff, "i", 1, "history_offsets", &nho) : NULL;
    int32_t *noff = hoff ? view_of(&vs, onoff, "i", 1, "name_offsets", &nno) : NULL;
    Py_ssize_t n = nc / (Py_ssize_t)sizeof(conn_t), nbytes = (n + 7) / 8;
    out_t o;
    if (!noff || !bind_columns(&vs, oout, COLUMNS, N_OUT, &o, &n, "columns")) {
        views_release(&vs);
        return NULL;
    }
    if (nc != n * (Py_ssize_t)sizeof(conn_t) || nh != n * HMAX || nk != n * (Py_ssize_t)sizeof(conn_key_t) ||
        nn % 4 || nb != N_BITS * nbytes || nho != n + 1 || nno != n + 1 || (int64_t)n * NAME_LEN > INT32_MAX) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "row matrices disagree: %zd connection rows", n);
    }
    Py_ssize_t m = nn / 4, set[N_BITS] = {0};
    Py_BEGIN_ALLOW_THREADS
    memset(bits, 0, (size_t)nb);
    for (Py_ssize_t i = 0; i < n; i++) {
        const conn_t *c = C + i;
        const conn_key_t *k = K + i;
        const uint8_t *h = H + i * HMAX;
        int a_orig = c->orig == 0, tcp = c->proto == 6;
        const side_t *O = &c->side[a_orig ? 0 : 1], *R = &c->side[a_orig ? 1 : 0];
        uint64_t ohi = a_orig ? k->ahi : k->bhi, olo = a_orig ? k->alo : k->blo;
        uint64_t rhi = a_orig ? k->bhi : k->ahi, rlo = a_orig ? k->blo : k->alo;
        uint16_t oport = a_orig ? k->aport : k->bport, rport = a_orig ? k->bport : k->aport;
        int64_t osize = payload_size(O, R, tcp), rsize = payload_size(R, O, tcp);
        uint64_t fid = mix(mix(mix(mix(ohi, olo), rhi), rlo), ((uint64_t)oport << 16) | rport);
        fid = mix(fid, ((uint64_t)k->proto << 32) | ((uint64_t)k->vlan << 16) | (uint64_t)k->ivlan);
        fid = mix(fid, (uint64_t)c->ts0);
#define SET(col, value) o.col[i] = (value)
        SET(flow_id, fid);
        SET(ts0, c->ts0);
        SET(tsend, c->tslast);
        SET(duration, (double)(int64_t)((uint64_t)c->tslast - (uint64_t)c->ts0) / 1e9);
        SET(proto, k->proto);
        SET(ipver, k->ipver);
        put_addr(o.oaddr + 16 * i, ohi, olo);
        put_addr(o.raddr + 16 * i, rhi, rlo);
        SET(oport, oport);
        SET(rport, rport);
        SET(opkts, O->pkts);
        SET(rpkts, R->pkts);
        SET(oipb, O->ipb);
        SET(ripb, R->ipb);
        SET(osize, osize);
        SET(rsize, rsize);
        SET(state, conn_state(O->state, R->state, c->proto, osize, rsize, h));
        for (int j = 0; j < 8; j++) {
            o.flags[j * n + i] = O->fl[j];
            o.flags[(8 + j) * n + i] = R->fl[j];
        }
        SET(missed, (uint64_t)O->missed + (uint64_t)R->missed);
        SET(synts, O->synts);
        SET(synlast, O->synlast);
        SET(synackts, R->synackts);
        SET(ackts, O->ackts);
        SET(syncnt, (uint32_t)O->syncnt);
        SET(vlan, k->vlan);
        SET(ivlan, k->ivlan);
        SET(key, k->hash);
        SET(errs, (uint32_t)c->errs);
        SET(etype, c->etype);
        SET(ecode, c->ecode);
        put_addr(o.eaddr + 16 * i, (uint64_t)c->esrchi, (uint64_t)c->esrclo);
        SET(svc, (uint32_t)c->svc); /* the confirmed bits */
        for (int j = 0; j < N_PAR; j++) {
            o.par[(j * PAR_WIDTH + P_KEY) * n + i] = (int64_t)c->par[j].key;
            o.par[(j * PAR_WIDTH + P_FIRST) * n + i] = c->par[j].first;
            o.par[(j * PAR_WIDTH + P_LAST) * n + i] = c->par[j].last;
        }
#undef SET
        SETBIT(B_TS0, i, c->ts0 >= 0);
        SETBIT(B_TSEND, i, c->tslast >= 0);
        SETBIT(B_SYNTS, i, O->synts >= 0);
        SETBIT(B_SYNLAST, i, O->synlast >= 0);
        SETBIT(B_SYNACKTS, i, R->synackts >= 0);
        SETBIT(B_ACKTS, i, O->ackts >= 0);
        SETBIT(B_ERROR, i, c->errs != 0); /* the count, not its uint32 column, can wrap to 0 */
        SETBIT(B_LOCAL_ORIG, i, in_nets(ohi, olo, nets, m));
        SETBIT(B_LOCAL_RESP, i, in_nets(rhi, rlo, nets, m));
        SETBIT(B_PREFIX, i, c->prefix);
        SETBIT(B_ENCLOSES, i, c->encloses);
    }
    for (int b = 0; b < N_BITS; b++)
        for (Py_ssize_t j = 0; j < nbytes; j++)
            set[b] += __builtin_popcount(bits[b * nbytes + j]);
    Py_END_ALLOW_THREADS
    PyObject *hist = texts(H, HMAX, HMAX, n, hoff);
    PyObject *names = hist ? texts((const uint8_t *)C->name, sizeof(conn_t), NAME_LEN, n, noff) : NULL;
    PyObject *counts = names ? PyTuple_New(N_BITS) : NULL;
    for (int b = 0; counts && b < N_BITS; b++) {
        PyObject *v = PyLong_FromSsize_t(set[b]);
        if (!v)
            Py_CLEAR(counts);
        else
            PyTuple_SET_ITEM(counts, b, v);
    }
    views_release(&vs);
    PyObject *result = counts ? PyTuple_Pack(3, counts, hist, names) : NULL;
    Py_XDECREF(counts);
    Py_XDECREF(hist);
    Py_XDECREF(names);
    return result;
}

static PyObject *
local_bits(PyObject *self, PyObject *args)
{
    PyObject *ohi, *olo, *onets, *oout;
    if (!PyArg_ParseTuple(args, "OOOO", &ohi, &olo, &onets, &oout))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t n, nl, nn, no;
    const uint64_t *hi = view_of(&vs, ohi, "L", 0, "hi", &n);
    const uint64_t *lo = hi ? view_of(&vs, olo, "L", 0, "lo", &nl) : NULL;
    const uint64_t *nets = lo ? view_of(&vs, onets, "L", 0, "nets", &nn) : NULL;
    uint8_t *out = nets ? view_of(&vs, oout, "?", 1, "out", &no) : NULL;
    if (!out) {
        views_release(&vs);
        return NULL;
    }
    if (nl != n || no != n || nn % 4) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "local_bits: %zd/%zd addresses, %zd outputs, %zd net words", n, nl,
                            no, nn);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (uint8_t)in_nets(hi[i], lo[i], nets, nn / 4);
    Py_END_ALLOW_THREADS
    views_release(&vs);
    Py_RETURN_NONE;
}

/* First position in [lo, hi) of a sorted array whose value is > v (or >= v when `strict` is 0). */
#define BOUND(name, type)                                                                            \
    static inline Py_ssize_t name(const type *a, Py_ssize_t lo, Py_ssize_t hi, type v, int strict)  \
    {                                                                                                \
        while (lo < hi) {                                                                            \
            Py_ssize_t mid = lo + (hi - lo) / 2;                                                     \
            if (strict ? a[mid] <= v : a[mid] < v)                                                   \
                lo = mid + 1;                                                                        \
            else                                                                                     \
                hi = mid;                                                                            \
        }                                                                                            \
        return lo;                                                                                   \
    }
BOUND(bound_u64, uint64_t)
BOUND(bound_i64, int64_t)

/* tunnel_parents of row i: for each parent slot (key, first, last), the parent connections on
 * that key whose span [ts_start, ts_end] meets [first, last], in time order. The index holds
 * the connections that carried tunnelled packets, sorted by (key, ts_start); connections on
 * one key do not overlap in time, so ts_end is sorted within a key too. */
static Py_ssize_t
resolve_row(const int64_t *slots, const uint64_t *ikey, const int64_t *its0, const int64_t *itsend,
            const uint64_t *ifid, Py_ssize_t m, uint64_t *out)
{
    Py_ssize_t count = 0;
    for (int j = 0; j < N_PAR; j++) {
        const int64_t *s = slots + j * PAR_WIDTH;
        uint64_t key = (uint64_t)s[P_KEY];
        if (!key)
            continue;
        Py_ssize_t lo = bound_u64(ikey, 0, m, key, 0), hi = bound_u64(ikey, lo, m, key, 1);
        Py_ssize_t end = bound_i64(its0, lo, hi, s[P_LAST], 1);   /* ts_start <= last */
        Py_ssize_t at = bound_i64(itsend, lo, end, s[P_FIRST], 0); /* ts_end >= first */
        for (; at < end; at++, count++)
            if (out)
                out[count] = ifid[at];
    }
    return count;
}

static PyObject *
parents(PyObject *self, PyObject *args)
{
    PyObject *oslots, *okey, *ots0, *otsend, *ofid, *ooff, *oval;
    if (!PyArg_ParseTuple(args, "OOOOOOO", &oslots, &okey, &ots0, &otsend, &ofid, &ooff, &oval))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t ns, m, m1, m2, m3, noff, nval = 0;
    const int64_t *slots = view_of(&vs, oslots, "l", 0, "slots", &ns);
    const uint64_t *ikey = slots ? view_of(&vs, okey, "L", 0, "key", &m) : NULL;
    const int64_t *its0 = ikey ? view_of(&vs, ots0, "l", 0, "ts_start", &m1) : NULL;
    const int64_t *itsend = its0 ? view_of(&vs, otsend, "l", 0, "ts_end", &m2) : NULL;
    const uint64_t *ifid = itsend ? view_of(&vs, ofid, "L", 0, "flow_id", &m3) : NULL;
    int64_t *off = ifid ? view_of(&vs, ooff, "l", 1, "offsets", &noff) : NULL;
    uint64_t *val = NULL;
    if (off && oval != Py_None)
        val = view_of(&vs, oval, "L", 1, "values", &nval);
    if (!off || (oval != Py_None && !val)) {
        views_release(&vs);
        return NULL;
    }
    Py_ssize_t width = N_PAR * PAR_WIDTH, n = ns / width;
    if (ns != n * width || m1 != m || m2 != m || m3 != m || noff != n + 1) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "parents: %zd slot values, index %zd/%zd/%zd/%zd, %zd offsets", ns, m,
                            m1, m2, m3, noff);
    }
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (val && off[i + 1] - off[i] != resolve_row(slots + i * width, ikey, its0, itsend, ifid, m, NULL)) {
            ok = 0; /* offsets from a counting call over the same input */
            break;
        }
        if (val)
            resolve_row(slots + i * width, ikey, its0, itsend, ifid, m, val + off[i]);
        else
            off[i + 1] = off[i] + resolve_row(slots + i * width, ikey, its0, itsend, ifid, m, NULL);
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    if (!ok || (val && off[n] > nval))
        return PyErr_Format(PyExc_ValueError, "parents: offsets do not match the input");
    Py_RETURN_NONE;
}

static PyObject *
names_tuple(const char **names, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

/* Packing row matrices for disk (flows/overflow.py): the rows of a spilled segment share most
 * of their bytes (sentinels, zeros, one protocol's state), and lz4 costs about 0.25 ns a byte
 * even on bytes it packs away, ~220 ns a 824-byte row. Only the byte columns that differ
 * somewhere in the matrix are kept (19-36 of 824 on a scan or spray), row after row; the
 * first row is kept whole as the template the others are rebuilt on. */
#define MAX_PACK_WIDTH 4096 /* bytes a row (the state row is 726): the work arrays live on the stack */

/* The runs [start, start + len) of byte columns that vary, from their positions (ascending). */
static Py_ssize_t
runs_of(const uint16_t *idx, Py_ssize_t m, Py_ssize_t *start, Py_ssize_t *len)
{
    Py_ssize_t r = 0;
    for (Py_ssize_t j = 0; j < m; j++) {
        if (r && start[r - 1] + len[r - 1] == idx[j]) {
            len[r - 1]++;
        } else {
            start[r] = idx[j];
            len[r++] = 1;
        }
    }
    return r;
}

static PyObject *
pack_rows(PyObject *self, PyObject *args)
{
    PyObject *orows, *oidx, *opacked;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OnOO", &orows, &width, &oidx, &opacked))
        return NULL;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    Py_ssize_t nbytes, nidx, npacked;
    const uint8_t *rows;
    uint16_t *idx;
    uint8_t *packed;
    if (!(rows = view_of(&vs, orows, "B", 0, "rows", &nbytes)) || !(idx = view_of(&vs, oidx, "H", 1, "idx", &nidx)) ||
        !(packed = view_of(&vs, opacked, "B", 1, "packed", &npacked)))
        goto out;
    if (width <= 0 || width > MAX_PACK_WIDTH || nbytes % width || nidx < width || npacked < nbytes) {
        PyErr_SetString(PyExc_ValueError, "pack_rows(): rows of `width` bytes (at most 4096), idx and packed too small");
        goto out;
    }
    Py_ssize_t n = nbytes / width, m = 0;
    Py_BEGIN_ALLOW_THREADS
    uint8_t acc[MAX_PACK_WIDTH];
    memset(acc, 0, (size_t)width);
    for (Py_ssize_t r = 1; r < n; r++) {
        const uint8_t *row = rows + r * width;
        for (Py_ssize_t k = 0; k < width; k++) /* vectorized by the compiler */
            acc[k] |= row[k] ^ rows[k];
    }
    for (Py_ssize_t k = 0; k < width; k++)
        if (acc[k])
            idx[m++] = (uint16_t)k;
    Py_ssize_t start[MAX_PACK_WIDTH / 2 + 1], len[MAX_PACK_WIDTH / 2 + 1];
    Py_ssize_t nr = runs_of(idx, m, start, len);
    uint8_t *o = packed;
    for (Py_ssize_t r = 0; r < n; r++) {
        const uint8_t *row = rows + r * width;
        for (Py_ssize_t q = 0; q < nr; q++) {
            memcpy(o, row + start[q], (size_t)len[q]);
            o += len[q];
        }
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(m);
out:
    views_release(&vs);
    return result;
}

static PyObject *
unpack_rows(PyObject *self, PyObject *args)
{
    PyObject *otemplate, *oidx, *opacked, *orows;
    if (!PyArg_ParseTuple(args, "OOOO", &otemplate, &oidx, &opacked, &orows))
        return NULL;
    views_t vs = {.n = 0};
    PyObject *result = NULL;
    Py_ssize_t width, m, npacked, nbytes;
    const uint8_t *template, *packed;
    const uint16_t *idx;
    uint8_t *rows;
    if (!(template = view_of(&vs, otemplate, "B", 0, "template", &width)) ||
        !(idx = view_of(&vs, oidx, "H", 0, "idx", &m)) || !(packed = view_of(&vs, opacked, "B", 0, "packed", &npacked)) ||
        !(rows = view_of(&vs, orows, "B", 1, "rows", &nbytes)))
        goto out;
    int ok = width > 0 && width <= MAX_PACK_WIDTH && nbytes % width == 0 && m <= width && npacked == (nbytes / width) * m;
    for (Py_ssize_t j = 0; ok && j < m; j++)
        ok = idx[j] < width && (j == 0 || idx[j] > idx[j - 1]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "unpack_rows(): idx, packed and rows do not match the template");
        goto out;
    }
    Py_ssize_t n = nbytes / width;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t start[MAX_PACK_WIDTH / 2 + 1], len[MAX_PACK_WIDTH / 2 + 1];
    Py_ssize_t nr = runs_of(idx, m, start, len);
    const uint8_t *in = packed;
    for (Py_ssize_t r = 0; r < n; r++) {
        uint8_t *row = rows + r * width;
        memcpy(row, template, (size_t)width);
        for (Py_ssize_t q = 0; q < nr; q++) {
            memcpy(row + start[q], in, (size_t)len[q]);
            in += len[q];
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
out:
    views_release(&vs);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS,
     "columns(C, H, K, nets, out, bits, history_offsets, name_offsets) -> (set bits, history, names): the flow "
     "columns of n connection rows into `out` (arrays named and typed by COLUMNS), the BITMAPS into `bits` "
     "(N x ceil(n / 8) bytes), the history and server name texts as Arrow string data (offsets n + 1, int32; "
     "their bytes returned); `nets`: the local networks' words (flows/local.py)."},
    {"local_bits", local_bits, METH_VARARGS,
     "local_bits(hi, lo, nets, out): out[i] = address (hi[i], lo[i]) is in one of the networks `nets`."},
    {"parents", parents, METH_VARARGS,
     "parents(slots, key, ts_start, ts_end, flow_id, offsets, values): tunnel_parents of n rows from their parent "
     "slots (n x N_PAR x 3 int64: key, first, last) and the index of tunnel parents sorted by (key, ts_start). "
     "With values None: fills offsets (n + 1) with list offsets; then with values (offsets[n] items): the "
     "parents' flow_ids."},
    {"pack_rows", pack_rows, METH_VARARGS,
     "pack_rows(rows, width, idx, packed) -> m: (width <= MAX_PACK_WIDTH) the positions of the byte columns that differ somewhere in "
     "`rows` (uint8, rows of `width` bytes) into idx[:m] (uint16), and those bytes of every row, row after row, "
     "into packed[:n * m]. The first row is the template unpack_rows rebuilds the others on."},
    {"unpack_rows", unpack_rows, METH_VARARGS,
     "unpack_rows(template, idx, packed, rows): every row of `rows` (uint8, rows of len(template) bytes) = "
     "the template with the bytes at positions idx taken from packed, row after row (pack_rows' inverse)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, -1, methods};


PyMODINIT_FUNC
PyInit__rows(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    PyObject *cols = PyTuple_New(N_OUT);
    for (int j = 0; cols && j < N_OUT; j++) {
        PyObject *c = Py_BuildValue("(ssi)", COLUMNS[j].name, COLUMNS[j].fmt, COLUMNS[j].width);
        if (!c)
            Py_CLEAR(cols);
        else
            PyTuple_SET_ITEM(cols, j, c);
    }
    if (PyModule_AddObject(m, "COLUMNS", cols) < 0 || PyModule_AddObject(m, "BITMAPS", names_tuple(BITMAPS, N_BITS)) < 0 ||
        PyModule_AddObject(m, "FLAGS", names_tuple(FLAGS, 8)) < 0 ||
        PyModule_AddObject(m, "SLOTS", names_tuple(SLOTS, N_PAR * PAR_WIDTH)) < 0 ||
        PyModule_AddObject(m, "STATES", names_tuple(STATES, N_STATES)) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACK_WIDTH", MAX_PACK_WIDTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
