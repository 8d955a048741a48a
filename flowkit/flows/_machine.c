/* The per-connection TCP/UDP state machine (kernel.py documents the rules and layout).
 *
 * One sequential scan over the packets in capture order; each packet touches only the
 * fixed-size row of its connection. The layout (_layout.h) must match kernel.py, which
 * checks it against the values this module exports. The per-connection logic is in
 * _conn.h, shared with the one-pass kernel (_stream.c).
 */
#include "_conn.h"

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
    for (Py_ssize_t i = 0; i < m->n_pkts; i++) {
        int64_t t = m->ts[i], k = m->slot[i], side = m->side[i], flags = m->flags[i], proto = m->proto[i];
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
        int64_t keep_orig = -1;
        int fresh = c < 0;
        if (!fresh && starts_new(ROW(c), t, proto, flags, m->seq[i], m->tcp_ns, m->udp_ns, &keep_orig)) {
            fresh = 1;
            m->done[c] = 1;
        }
        if (fresh) {
            if (n_conn >= m->cap)
                return -1;
            open_conn(C, m->H, m->K, m->SK + k * N_KEY, m->likely + k * N_LIKELY, n_conn, k, t, side, proto, flags,
                      keep_orig, m->prefix[i], m->active_ns);
            c = n_conn++;
            m->slot_conn[k] = c;
        }
        feed(C, m->H, c, side, t, flags, m->seq[i], m->ack[i], m->win[i], m->plen[i], m->iplen[i], proto);
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

PyDoc_STRVAR(deadlines_doc,
"deadlines(C, tcp_ns, udp_ns, out) -> None\n"
"--\n\n"
"out[i] = the time from which a packet on row i's key starts a new connection.");

static PyObject *
deadlines(PyObject *self, PyObject *args)
{
    PyObject *oC, *oout;
    long long tcp_ns, udp_ns;
    if (!PyArg_ParseTuple(args, "OLLO", &oC, &tcp_ns, &udp_ns, &oout))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t nC, nout;
    const int64_t *C = view_of(&vs, oC, "l", 0, "C", &nC);
    int64_t *out = C ? view_of(&vs, oout, "l", 1, "out", &nout) : NULL;
    if (!out) {
        views_release(&vs);
        return NULL;
    }
    if (nC != nout * NCOL) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "deadlines: out has %zd rows, C %zd items", nout, nC);
    }
    for (Py_ssize_t i = 0; i < nout; i++)
        out[i] = deadline(ROW(i), tcp_ns, udp_ns);
    views_release(&vs);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"advance", (PyCFunction)(void (*)(void))advance, METH_FASTCALL, advance_doc},
    {"deadlines", deadlines, METH_VARARGS, deadlines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._machine",
    "The per-connection TCP/UDP state machine (see flowkit.flows.kernel).", -1, methods,
};

PyMODINIT_FUNC
PyInit__machine(void)
{
    /* the layout the C code hard-codes; kernel.py compares each with its own value */
    static const int_const_t consts[] = {
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
    PyObject *mod = with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
    if (!mod)
        return NULL;
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
