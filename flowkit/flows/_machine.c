/* The mergeable driver's kernels: packets into flow packets (the rules of _rules.h) and
 * those into the connections of key slots (the state machine of _conn.h).
 *
 * state.py sorts a batch's flow packets by key into slots (np.unique) because merging
 * needs per-key bookkeeping; this runs the packets in capture order through the open
 * connection of each slot. _stream.c is the one-pass driver over the same rules.
 */
#include "_conn.h"

/* Flow packets of a batch, as state.py keeps them (compact columns, one row a packet). */
typedef struct {
    int64_t *ts;
    uint64_t *hash, *parent;
    int8_t *side, *encloses;
    int64_t *flags, *seq, *ack, *win, *plen, *iplen, *proto, *ahi, *alo, *bhi, *blo, *aport, *bport, *vlan,
        *ivlan, *ipver, *pstart, *pcap, *kind, *ehi, *elo;
} flow_cols_t;

static const column_t FLOW_PACKET_COLUMNS[] = {
#define COL(name, fmt) {#name, fmt, 1, offsetof(flow_cols_t, name), 1}
    COL(ts, "l"), COL(hash, "L"), COL(side, "b"), COL(flags, "l"), COL(seq, "l"), COL(ack, "l"), COL(win, "l"),
    COL(plen, "l"), COL(iplen, "l"), COL(proto, "l"), COL(ahi, "l"), COL(alo, "l"), COL(bhi, "l"),
    COL(blo, "l"), COL(aport, "l"), COL(bport, "l"), COL(vlan, "l"), COL(ivlan, "l"), COL(ipver, "l"),
    COL(pstart, "l"), COL(pcap, "l"), COL(kind, "l"), COL(ehi, "l"), COL(elo, "l"), COL(parent, "L"),
    COL(encloses, "b"),
#undef COL
};
#define N_FLOW_PACKET_COLUMNS ((int)(sizeof FLOW_PACKET_COLUMNS / sizeof FLOW_PACKET_COLUMNS[0]))

PyDoc_STRVAR(flow_packets_doc,
"flow_packets(packets, payload, out, options) -> int\n"
"--\n\n"
"Write the flow packets of `packets` (arrays in PACKET_COLUMNS order) to the first rows\n"
"of `out` (arrays in FLOW_PACKET_COLUMNS order, at least as long); returns how many.\n"
"payload: PAYLOAD_COLUMNS (zero rows when the batch has none) copied to pstart/pcap;\n"
"options: (vlan_key,).");

static PyObject *
flow_packets(PyObject *self, PyObject *args)
{
    static const char *const names[] = {"vlan_key"};
    PyObject *opk, *opl, *oout, *oopt;
    if (!PyArg_ParseTuple(args, "OOOO", &opk, &opl, &oout, &oopt))
        return NULL;
    views_t vs = {.n = 0};
    packet_cols_t p;
    payload_cols_t pl;
    flow_cols_t o;
    int64_t vlan_key = 0;
    int64_t *const opts[] = {&vlan_key};
    Py_ssize_t n = -1, m = -1, n_pl = -1, kept = 0;
    if (!bind_columns(&vs, opk, PACKET_COLUMNS, N_PACKET_COLUMNS, &p, &n, "packets") ||
        !bind_columns(&vs, opl, PAYLOAD_COLUMNS, N_PAYLOAD_COLUMNS, &pl, &n_pl, "payload") ||
        !bind_columns(&vs, oout, FLOW_PACKET_COLUMNS, N_FLOW_PACKET_COLUMNS, &o, &m, "out") ||
        !bind_options(oopt, names, opts, 1, "options")) {
        views_release(&vs);
        return NULL;
    }
    if (n_pl != 0 && n_pl != n) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "payload: %zd rows for %zd packets", n_pl, n);
    }
    if (m < n) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "out: %zd rows for %zd packets", m, n);
    }
    Py_BEGIN_ALLOW_THREADS
    flow_pkt_t f;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!flow_packet(&p, i, (int)vlan_key, &f))
            continue;
        Py_ssize_t j = kept++;
        o.ts[j] = f.t;
        o.hash[j] = (uint64_t)f.key[K_HASH];
        o.side[j] = (int8_t)f.side;
        o.flags[j] = f.flags;
        o.seq[j] = f.seq;
        o.ack[j] = f.ack;
        o.win[j] = f.win;
        o.plen[j] = f.plen;
        o.iplen[j] = f.iplen;
        o.proto[j] = f.proto;
        o.ahi[j] = f.key[K_AHI];
        o.alo[j] = f.key[K_ALO];
        o.bhi[j] = f.key[K_BHI];
        o.blo[j] = f.key[K_BLO];
        o.aport[j] = f.key[K_APORT];
        o.bport[j] = f.key[K_BPORT];
        o.vlan[j] = f.key[K_VLAN];
        o.ivlan[j] = f.key[K_IVLAN];
        o.ipver[j] = f.key[K_IPVER];
        o.pstart[j] = n_pl ? pl.start[i] : 0;
        o.pcap[j] = n_pl ? pl.caplen[i] : 0;
        /* kind, and for an ICMP report its type and code above it (one column for three) */
        o.kind[j] = f.kind | (f.etype << 8) | (f.ecode << 16);
        o.ehi[j] = f.ehi;
        o.elo[j] = f.elo;
        o.parent[j] = f.parent;
        o.encloses[j] = (int8_t)f.encloses;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    return PyLong_FromSsize_t(kept);
}

PyDoc_STRVAR(tunnel_links_doc,
"tunnel_links(packets, parent, encloses, options) -> None\n"
"--\n\n"
"Fill parent (uint64) and encloses (uint8), one item per packet of `packets` (arrays in\n"
"PACKET_COLUMNS order, whose own parent/encloses are not read), by _rules.h's tunnel_links:\n"
"the key hash of the connection of the packet that carried each inner flow packet, and\n"
"which packets carried one. options: (vlan_key,).");

static PyObject *
tunnel_links_py(PyObject *self, PyObject *args)
{
    static const char *const names[] = {"vlan_key"};
    PyObject *opk, *oparent, *oencl, *oopt;
    if (!PyArg_ParseTuple(args, "OOOO", &opk, &oparent, &oencl, &oopt))
        return NULL;
    views_t vs = {.n = 0};
    packet_cols_t p;
    int64_t vlan_key = 0;
    int64_t *const opts[] = {&vlan_key};
    Py_ssize_t n = -1, n1 = -1, n2 = -1;
    uint64_t *parent = NULL;
    uint8_t *encl = NULL;
    if (!bind_columns(&vs, opk, PACKET_COLUMNS, N_PACKET_COLUMNS, &p, &n, "packets") ||
        !(parent = view_of(&vs, oparent, "L", 1, "parent", &n1)) ||
        !(encl = view_of(&vs, oencl, "B", 1, "encloses", &n2)) || !bind_options(oopt, names, opts, 1, "options")) {
        views_release(&vs);
        return NULL;
    }
    if (n1 != n || n2 != n) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "parent/encloses: %zd/%zd items for %zd packets", n1, n2, n);
    }
    Py_BEGIN_ALLOW_THREADS
    tunnel_links(&p, n, (int)vlan_key, parent, encl);
    Py_END_ALLOW_THREADS
    views_release(&vs);
    Py_RETURN_NONE;
}

/* The connection rows (C, H, K, done: one row a connection). */
typedef struct {
    conn_t *C;
    conn_key_t *K;
    uint8_t *H, *done;
} rows_t;

static const column_t ROW_COLUMNS[] = {
    {"C", "B", sizeof(conn_t), offsetof(rows_t, C), 1}, {"H", "B", HMAX, offsetof(rows_t, H), 1},
    {"K", "B", sizeof(conn_key_t), offsetof(rows_t, K), 1}, {"done", "?", 1, offsetof(rows_t, done), 1},
};

/* The key slots of a batch: key row and open connection (-1 none) of each. */
typedef struct {
    int64_t *SK, *conn;
} slots_t;

static const column_t SLOT_COLUMNS[] = {
    {"key", "l", N_KEY, offsetof(slots_t, SK), 0}, {"conn", "l", 1, offsetof(slots_t, conn), 1},
};

/* The packets the state machine reads, in capture order. */
typedef struct {
    int64_t *ts, *slot, *flags, *seq, *ack, *win, *plen, *iplen, *proto, *pstart, *pcap, *kind, *ehi, *elo;
    int8_t *side, *prefix, *encloses;
    uint64_t *parent;
} machine_pkts_t;

static const column_t MACHINE_COLUMNS[] = {
#define COL(name, fmt) {#name, fmt, 1, offsetof(machine_pkts_t, name), 0}
    COL(ts, "l"), COL(slot, "l"), COL(side, "b"), COL(flags, "l"), COL(seq, "l"), COL(ack, "l"), COL(win, "l"),
    COL(plen, "l"), COL(iplen, "l"), COL(proto, "l"), COL(prefix, "b"), COL(pstart, "l"), COL(pcap, "l"),
    COL(kind, "l"), COL(ehi, "l"), COL(elo, "l"), COL(parent, "L"), COL(encloses, "b"),
#undef COL
};
#define N_MACHINE_COLUMNS ((int)(sizeof MACHINE_COLUMNS / sizeof MACHINE_COLUMNS[0]))

/* Input errors found in the packet loop (raised once the GIL is back). */
enum { OK, BAD_SLOT, BAD_SIDE, BAD_CONN };

static int64_t
run(rows_t *rw, Py_ssize_t cap, slots_t *sl, Py_ssize_t n_slots, const machine_pkts_t *p, Py_ssize_t n_pkts,
    const uint8_t *data, Py_ssize_t n_data, int64_t *E, int64_t n_conn, int64_t tcp_ns, int64_t udp_ns,
    int64_t active_ns, int *err, Py_ssize_t *at)
{
    conn_t *C = rw->C;
    for (Py_ssize_t i = 0; i < n_pkts; i++) {
        int64_t t = p->ts[i], k = p->slot[i], side = p->side[i], flags = p->flags[i], proto = p->proto[i];
        if (k < 0 || k >= n_slots) {
            *err = BAD_SLOT, *at = i;
            return 0;
        }
        if (side != 0 && side != 1) {
            *err = BAD_SIDE, *at = i;
            return 0;
        }
        int64_t c = sl->conn[k];
        if (c >= n_conn) {
            *err = BAD_CONN, *at = i;
            return 0;
        }
        int64_t kind = p->kind[i] & 0xFF;
        if (kind == PK_ICMP_REPORT) { /* reports on an open connection, never opens one */
            if (c >= 0 && reports_on(ROW(c), t, tcp_ns, udp_ns)) {
                flow_pkt_t f = {.etype = (p->kind[i] >> 8) & 0xFF, .ecode = (p->kind[i] >> 16) & 0xFF,
                                .ehi = p->ehi[i], .elo = p->elo[i]};
                icmp_report(C, c, &f);
            }
            continue;
        }
        int64_t keep_orig = -1;
        int fresh = c < 0;
        if (!fresh && starts_new(ROW(c), t, proto, flags, p->seq[i], tcp_ns, udp_ns, &keep_orig)) {
            fresh = 1;
            rw->done[c] = 1;
        }
        if (fresh) {
            if (n_conn >= cap)
                return -1;
            open_conn(C, rw->H, rw->K, sl->SK + k * N_KEY, n_conn, t, side, proto, flags, keep_orig, p->prefix[i],
                      active_ns);
            c = n_conn++;
            sl->conn[k] = c;
            expected(C, rw->K, c, t, E);
        }
        feed(C, rw->H, c, side, t, flags, p->seq[i], p->ack[i], p->win[i], p->plen[i], p->iplen[i], proto, kind);
        if (kind == PK_PACKET) /* Zeek's analyzers never see a packet whose checksum is wrong */
            identify(C, rw->K, c, side, t, proto, p->pstart[i], p->pcap[i], data, n_data, E);
        tunnel_packet(C, c, t, p->parent[i], p->encloses[i]);
    }
    return n_conn;
}

static const char *const ADVANCE_OPTIONS[] = {"n_conn", "tcp_ns", "udp_ns", "active_ns"};

PyDoc_STRVAR(advance_doc,
"advance(rows, slots, packets, data, expect, options) -> int\n"
"--\n\n"
"Run packets (capture order) through the connections; returns the new connection count.\n\n"
"rows: (C, H, K, done) in ROW_COLUMNS order, one row a connection (capacity); slots:\n"
"(key, conn) in SLOT_COLUMNS order, one row a key slot of the batch, conn the open\n"
"connection of the slot (-1 when none); packets: MACHINE_COLUMNS (pstart/pcap: payload\n"
"bytes in data, pcap 0 for none); expect: the expectation table; options: (n_conn,\n"
"tcp_ns, udp_ns, active_ns). A connection another one replaces on the same key is marked\n"
"in done. Returns -1 when the rows are full (the caller grows them and runs again from\n"
"the same input).");

static PyObject *
advance(PyObject *self, PyObject *args)
{
    PyObject *orows, *oslots, *opk, *odata, *oexp, *oopt;
    if (!PyArg_ParseTuple(args, "OOOOOO", &orows, &oslots, &opk, &odata, &oexp, &oopt))
        return NULL;
    views_t vs = {.n = 0};
    rows_t rw;
    slots_t sl;
    machine_pkts_t p;
    Py_ssize_t cap = -1, n_slots = -1, n_pkts = -1, n_data = 0;
    const uint8_t *data;
    int64_t *E;
    int64_t n_conn, tcp_ns, udp_ns, active_ns;
    int64_t *const opts[] = {&n_conn, &tcp_ns, &udp_ns, &active_ns};
    PyObject *result = NULL;
    if (!bind_columns(&vs, orows, ROW_COLUMNS, 4, &rw, &cap, "rows") ||
        !bind_columns(&vs, oslots, SLOT_COLUMNS, 2, &sl, &n_slots, "slots") ||
        !bind_columns(&vs, opk, MACHINE_COLUMNS, N_MACHINE_COLUMNS, &p, &n_pkts, "packets") ||
        !(data = view_of(&vs, odata, "B", 0, "data", &n_data)) || !bind_expect(&vs, oexp, &E) ||
        !bind_options(oopt, ADVANCE_OPTIONS, opts, 4, "options"))
        goto done;
    if (n_conn < 0 || n_conn > cap) {
        PyErr_Format(PyExc_ValueError, "n_conn: %lld outside [0, %zd]", (long long)n_conn, cap);
        goto done;
    }
    int err = OK;
    Py_ssize_t at = 0;
    int64_t out;
    Py_BEGIN_ALLOW_THREADS
    out = run(&rw, cap, &sl, n_slots, &p, n_pkts, data, n_data, E, n_conn, tcp_ns, udp_ns, active_ns, &err, &at);
    Py_END_ALLOW_THREADS
    if (err == BAD_SLOT)
        PyErr_Format(PyExc_ValueError, "packets.slot[%zd]: %lld is not a key slot", at, (long long)p.slot[at]);
    else if (err == BAD_SIDE)
        PyErr_Format(PyExc_ValueError, "packets.side[%zd]: %d is not 0 or 1", at, (int)p.side[at]);
    else if (err == BAD_CONN)
        PyErr_Format(PyExc_ValueError, "slots.conn[%lld]: not a connection below n_conn", (long long)p.slot[at]);
    else
        result = PyLong_FromLongLong(out);
done:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(deadlines_doc,
"deadlines(C, out, options) -> None\n"
"--\n\n"
"out[i] = the time from which a packet on row i's key starts a new connection;\n"
"options: (tcp_ns, udp_ns).");

static PyObject *
deadlines(PyObject *self, PyObject *args)
{
    PyObject *oC, *oout, *oopt;
    if (!PyArg_ParseTuple(args, "OOO", &oC, &oout, &oopt))
        return NULL;
    static const char *const names[] = {"tcp_ns", "udp_ns"};
    int64_t tcp_ns, udp_ns;
    int64_t *const opts[] = {&tcp_ns, &udp_ns};
    views_t vs = {.n = 0};
    Py_ssize_t nC, nout;
    const conn_t *C = view_of(&vs, oC, "B", 0, "C", &nC);
    int64_t *out = C ? view_of(&vs, oout, "l", 1, "out", &nout) : NULL;
    if (!out || !bind_options(oopt, names, opts, 2, "options")) {
        views_release(&vs);
        return NULL;
    }
    if (nC != nout * (Py_ssize_t)sizeof(conn_t)) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "deadlines: out has %zd rows, C %zd items", nout, nC);
    }
    for (Py_ssize_t i = 0; i < nout; i++)
        out[i] = deadline(ROW(i), tcp_ns, udp_ns);
    views_release(&vs);
    Py_RETURN_NONE;
}

static PyObject *
ports_tuple(const uint16_t *ports, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int j = 0; t && j < n; j++)
        PyTuple_SET_ITEM(t, j, PyLong_FromLong(ports[j]));
    return t;
}

/* icmp_counterpart (_rules.h) of every type: -1 for one-way types. flows/community.py keys
 * Community IDs of ICMP by it, so the pairing lives in _rules.h alone. */
static PyObject *
counterpart_tuple(int64_t proto)
{
    PyObject *t = PyTuple_New(256);
    for (int j = 0; t && j < 256; j++)
        PyTuple_SET_ITEM(t, j, PyLong_FromLongLong(icmp_counterpart(proto, j)));
    return t;
}

/* The row fields Python reads or writes (flows/layout.py): the connection's times, role,
 * protocol, prefix mark, service state and server name; every field of the key. */
static const field_t CONN_FIELDS[] = {
    FIELD(conn_t, "ts0", ts0), FIELD(conn_t, "tspkt", tspkt), FIELD(conn_t, "orig", orig),
    FIELD(conn_t, "proto", proto), FIELD(conn_t, "prefix", prefix), FIELD(conn_t, "svc", svc),
    FIELD(conn_t, "svcn", svcn), FIELD(conn_t, "name", name), FIELD(conn_t, "encloses", encloses),
};

static const field_t KEY_FIELDS[] = {
    FIELD(conn_key_t, "hash", hash), FIELD(conn_key_t, "ahi", ahi), FIELD(conn_key_t, "alo", alo),
    FIELD(conn_key_t, "bhi", bhi), FIELD(conn_key_t, "blo", blo), FIELD(conn_key_t, "aport", aport),
    FIELD(conn_key_t, "bport", bport), FIELD(conn_key_t, "vlan", vlan), FIELD(conn_key_t, "ivlan", ivlan),
    FIELD(conn_key_t, "proto", proto), FIELD(conn_key_t, "ipver", ipver),
};

/* ((name, offset, size, kind), ...) of a field table */
static PyObject *
fields_tuple(const field_t *f, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int j = 0; t && j < n; j++) {
        PyObject *item = Py_BuildValue("(snnC)", f[j].name, (Py_ssize_t)f[j].offset, (Py_ssize_t)f[j].size, f[j].kind);
        if (!item) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, j, item);
    }
    return t;
}

static PyMethodDef methods[] = {
    {"flow_packets", flow_packets, METH_VARARGS, flow_packets_doc},
    {"tunnel_links", tunnel_links_py, METH_VARARGS, tunnel_links_doc},
    {"advance", advance, METH_VARARGS, advance_doc},
    {"deadlines", deadlines, METH_VARARGS, deadlines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._machine",
    "The mergeable flow driver's kernels and the layout constants Python reads (see flowkit.flows.state).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__machine(void)
{
    init_likely_table();
    /* the layout constants Python uses (flows/layout.py, keys.py, expected.py) */
    static const int_const_t consts[] = {
        {"CONN_SIZE", sizeof(conn_t)}, {"KEY_SIZE", sizeof(conn_key_t)}, {"HMAX", HMAX}, {"N_KEY", N_KEY},
        {"SVC_ANNOUNCER", (int64_t)SVC_ANNOUNCER},
        {"EXPECT_CAP", EXPECT_CAP}, {"EXPECT_WIDTH", EXPECT_WIDTH}, {"EXPECT_NS", EXPECT_NS}, {"X_HI", X_HI},
        {"X_LO", X_LO}, {"X_PORT", X_PORT}, {"X_SERVICE", X_SERVICE}, {"X_EXPIRES", X_EXPIRES},
        {"K_HASH", K_HASH}, {"K_AHI", K_AHI}, {"K_ALO", K_ALO}, {"K_BHI", K_BHI}, {"K_BLO", K_BLO},
        {"K_APORT", K_APORT}, {"K_BPORT", K_BPORT}, {"K_PROTO", K_PROTO}, {"K_VLAN", K_VLAN},
        {"K_IVLAN", K_IVLAN}, {"K_IPVER", K_IPVER},
    };
    PyObject *m = with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
    if (!m)
        return NULL;
    struct { const char *name; PyObject *value; } objs[] = {
        {"PACKET_COLUMNS", column_names(PACKET_COLUMNS, N_PACKET_COLUMNS)},
        {"FLOW_PACKET_COLUMNS", column_names(FLOW_PACKET_COLUMNS, N_FLOW_PACKET_COLUMNS)},
        {"ROW_COLUMNS", column_names(ROW_COLUMNS, 4)},
        {"SLOT_COLUMNS", column_names(SLOT_COLUMNS, 2)},
        {"MACHINE_COLUMNS", column_names(MACHINE_COLUMNS, N_MACHINE_COLUMNS)},
        {"PAYLOAD_COLUMNS", column_names(PAYLOAD_COLUMNS, N_PAYLOAD_COLUMNS)},
        {"TCP_SERVER_PORTS", ports_tuple(TCP_SERVER_PORTS, N_TCP_SERVER_PORTS)},
        {"UDP_SERVER_PORTS", ports_tuple(UDP_SERVER_PORTS, N_UDP_SERVER_PORTS)},
        {"ICMP4_COUNTERPART", counterpart_tuple(1)},
        {"ICMP6_COUNTERPART", counterpart_tuple(58)},
        {"CONN_FIELDS", fields_tuple(CONN_FIELDS, sizeof CONN_FIELDS / sizeof CONN_FIELDS[0])},
        {"KEY_FIELDS", fields_tuple(KEY_FIELDS, sizeof KEY_FIELDS / sizeof KEY_FIELDS[0])},
    };
    for (size_t j = 0; j < sizeof objs / sizeof objs[0]; j++) {
        if (!objs[j].value || PyModule_AddObject(m, objs[j].name, objs[j].value) < 0) {
            for (size_t k = j; k < sizeof objs / sizeof objs[0]; k++)
                Py_XDECREF(objs[k].value);
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
