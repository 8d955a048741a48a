/* Connection rows of the state machine into flow-table column values (rows.py wraps
 * them as Arrow).
 *
 * Why C: every output column is a per-row function of one connection row (roles,
 * Zeek's payload sizes, conn_state, flow_id), and computing ~45 columns with numpy
 * costs dozens of passes and temporaries over the rows; one pass per row does it all.
 * The rules are Zeek's, documented in docs/semantics.md; rows.py names the columns.
 */
#include "_buffers.h"
#include "_layout.h"

/* Output columns, in the order of COLUMNS below (int64 each; rows.py casts). */
enum {
    O_FLOW_ID, O_TS0, O_TSEND, O_PROTO, O_IPVER, O_OHI, O_OLO, O_OPORT, O_RHI, O_RLO, O_RPORT,
    O_OPKTS, O_RPKTS, O_OIPB, O_RIPB, O_OSIZE, O_RSIZE, O_STATE, O_MISSED,
    O_OFLAGS, O_RFLAGS = O_OFLAGS + 8,
    O_SYNTS = O_RFLAGS + 8, O_SYNLAST, O_SYNACKTS, O_ACKTS, O_SYNCNT, O_VLAN, O_IVLAN, O_KEY, O_PREFIX,
    O_ERRS, O_ETYPE, O_ECODE, O_EHI, O_ELO, O_ENCLOSES, O_PAR, N_OUT = O_PAR + N_PAR * PAR_WIDTH
};

static const char *COLUMNS[N_OUT] = {
    "flow_id", "ts_start", "ts_end", "proto", "ip_version", "ohi", "olo", "src_port", "rhi", "rlo", "dst_port",
    "src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes", "src_payload_bytes", "dst_payload_bytes", "conn_state",
    "missed_bytes", "src_syn", "src_fin", "src_rst", "src_ack", "src_psh", "src_urg", "src_ece", "src_cwr",
    "dst_syn", "dst_fin", "dst_rst", "dst_ack", "dst_psh", "dst_urg", "dst_ece", "dst_cwr",
    "syn_ts", "syn_last_ts", "synack_ts", "ack_ts", "syn_count", "vlan", "inner_vlan", "_key", "_prefix",
    "icmp_errors", "icmp_error_type", "icmp_error_code", "ehi", "elo",
    "_encloses", "_p0_key", "_p0_first", "_p0_last", "_p1_key", "_p1_first", "_p1_last", "_p2_key", "_p2_first",
    "_p2_last", "_p3_key", "_p3_first", "_p3_last",
};
/* the names above spell out N_PAR parent slots */
_Static_assert(N_PAR == 4 && PAR_WIDTH == 3, "COLUMNS names four parent slots of three fields");

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

static PyObject *
columns(PyObject *self, PyObject *args)
{
    PyObject *oC, *oH, *oK, *oout;
    if (!PyArg_ParseTuple(args, "OOOO", &oC, &oH, &oK, &oout))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t nc, nh, nk, no;
    const conn_t *C = view_of(&vs, oC, "B", 0, "C", &nc);
    const uint8_t *H = C ? view_of(&vs, oH, "B", 0, "H", &nh) : NULL;
    const conn_key_t *K = H ? view_of(&vs, oK, "B", 0, "K", &nk) : NULL;
    int64_t *out = K ? view_of(&vs, oout, "l", 1, "out", &no) : NULL;
    if (!out) {
        views_release(&vs);
        return NULL;
    }
    Py_ssize_t n = nc / (Py_ssize_t)sizeof(conn_t);
    if (nc != n * (Py_ssize_t)sizeof(conn_t) || nh != n * HMAX || nk != n * (Py_ssize_t)sizeof(conn_key_t) ||
        no != n * N_OUT) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "row matrices disagree: %zd connection rows", n);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const conn_t *c = C + i;
        const conn_key_t *k = K + i;
        const uint8_t *h = H + i * HMAX;
        int a_orig = c->orig == 0, tcp = c->proto == 6;
        const side_t *O = &c->side[a_orig ? 0 : 1], *R = &c->side[a_orig ? 1 : 0];
        int64_t ohi = (int64_t)(a_orig ? k->ahi : k->bhi), olo = (int64_t)(a_orig ? k->alo : k->blo);
        int64_t rhi = (int64_t)(a_orig ? k->bhi : k->ahi), rlo = (int64_t)(a_orig ? k->blo : k->alo);
        int64_t oport = a_orig ? k->aport : k->bport, rport = a_orig ? k->bport : k->aport;
        int64_t osize = payload_size(O, R, tcp), rsize = payload_size(R, O, tcp);
        uint64_t fid = mix(mix(mix(mix((uint64_t)ohi, (uint64_t)olo), (uint64_t)rhi), (uint64_t)rlo),
                           (uint64_t)((oport << 16) | rport));
        fid = mix(fid, ((uint64_t)k->proto << 32) | ((uint64_t)k->vlan << 16) | (uint64_t)k->ivlan);
        fid = mix(fid, (uint64_t)c->ts0);
#define SET(col, value) out[(Py_ssize_t)(col) * n + i] = (int64_t)(value)
        SET(O_FLOW_ID, fid);
        SET(O_TS0, c->ts0);
        SET(O_TSEND, c->tslast);
        SET(O_PROTO, k->proto);
        SET(O_IPVER, k->ipver);
        SET(O_OHI, ohi);
        SET(O_OLO, olo);
        SET(O_OPORT, oport);
        SET(O_RHI, rhi);
        SET(O_RLO, rlo);
        SET(O_RPORT, rport);
        SET(O_OPKTS, O->pkts);
        SET(O_RPKTS, R->pkts);
        SET(O_OIPB, O->ipb);
        SET(O_RIPB, R->ipb);
        SET(O_OSIZE, osize);
        SET(O_RSIZE, rsize);
        SET(O_STATE, conn_state(O->state, R->state, c->proto, osize, rsize, h));
        for (int j = 0; j < 8; j++) {
            SET(O_OFLAGS + j, O->fl[j]);
            SET(O_RFLAGS + j, R->fl[j]);
        }
        SET(O_MISSED, (int64_t)((uint64_t)O->missed + (uint64_t)R->missed));
        SET(O_SYNTS, O->synts);
        SET(O_SYNLAST, O->synlast);
        SET(O_SYNACKTS, R->synackts);
        SET(O_ACKTS, O->ackts);
        SET(O_SYNCNT, O->syncnt);
        SET(O_VLAN, k->vlan);
        SET(O_IVLAN, k->ivlan);
        SET(O_KEY, k->hash);
        SET(O_PREFIX, c->prefix != 0);
        SET(O_ERRS, c->errs);
        SET(O_ETYPE, c->etype);
        SET(O_ECODE, c->ecode);
        SET(O_EHI, c->esrchi);
        SET(O_ELO, c->esrclo);
        SET(O_ENCLOSES, c->encloses != 0);
        for (int j = 0; j < N_PAR; j++) {
            SET(O_PAR + j * PAR_WIDTH + P_KEY, c->par[j].key);
            SET(O_PAR + j * PAR_WIDTH + P_FIRST, c->par[j].first);
            SET(O_PAR + j * PAR_WIDTH + P_LAST, c->par[j].last);
        }
#undef SET
    }
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

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS,
     "columns(C, H, K, out): fill out (len(COLUMNS) x n, int64) with the flow columns of n connection rows."},
    {"parents", parents, METH_VARARGS,
     "parents(slots, key, ts_start, ts_end, flow_id, offsets, values): tunnel_parents of n rows from their parent "
     "slots (n x N_PAR x 3 int64: key, first, last) and the index of tunnel parents sorted by (key, ts_start). "
     "With values None: fills offsets (n + 1) with list offsets; then with values (offsets[n] items): the "
     "parents' flow_ids."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__rows(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObject(m, "COLUMNS", names_tuple(COLUMNS, N_OUT)) < 0 ||
        PyModule_AddObject(m, "STATES", names_tuple(STATES, N_STATES)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
