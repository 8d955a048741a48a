/* Record-header walks over a capture buffer, one call per buffer (pcap.py, pcapng.py, ranges.py).
 *
 * Each walk fills caller-allocated columns and returns (n, pos, status, ...). Python
 * only looks at the status: it never touches individual records. Walks never raise
 * on bad data: every bad value becomes a status the caller turns into a Damage.
 * The GIL is released while walking, so framing overlaps other threads' work. Why C: each
 * header's length says where the next one starts, so the walk cannot be vectorized.
 */
#include "_buffers.h"

#define MAX_CAPLEN 262144
#define MAX_PACKET_BLOCK (MAX_CAPLEN + 65536)

enum { NEED, FULL, STOP, OTHER_BLOCK, BAD_CAPLEN, BAD_BLOCK_LEN, ABSURD_BLOCK_LEN, BAD_TRAILER,
       BAD_IFACE, BAD_BLOCK_CAPLEN };

static inline int64_t
u32(const uint8_t *b, int64_t p, int big)
{
    if (big)
        return ((int64_t)b[p] << 24) | ((int64_t)b[p + 1] << 16) | ((int64_t)b[p + 2] << 8) | (int64_t)b[p + 3];
    return (int64_t)b[p] | ((int64_t)b[p + 1] << 8) | ((int64_t)b[p + 2] << 16) | ((int64_t)b[p + 3] << 24);
}

static inline int64_t
u16(const uint8_t *b, int64_t p, int big)
{
    return big ? ((int64_t)b[p] << 8) | (int64_t)b[p + 1] : (int64_t)b[p] | ((int64_t)b[p + 1] << 8);
}

/* Wrapping int64 arithmetic (timestamps from hostile files may overflow; never UB). */
static inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

/* Floor division, as Python's //, for b > 0. */
static inline int64_t
floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static PyObject *
frame_pcap(PyObject *self, PyObject *args)
{
    PyObject *obuf, *ostart, *ocaplen, *owirelen, *ots, *ofoff, *oindex;
    long long pos, stop, limit, base, first_index;
    int big, nanosecond;
    if (!PyArg_ParseTuple(args, "OLLppLLLOOOOOO", &obuf, &pos, &stop, &big, &nanosecond, &limit, &base,
                          &first_index, &ostart, &ocaplen, &owirelen, &ots, &ofoff, &oindex))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t size, cap, c2, c3, c4, c5, c6;
    const uint8_t *buf = view_of(&vs, obuf, "B", 0, "buf", &size);
    int64_t *start = buf ? view_of(&vs, ostart, "l", 1, "start", &cap) : NULL;
    uint32_t *caplen = start ? view_of(&vs, ocaplen, "I", 1, "caplen", &c2) : NULL;
    uint32_t *wirelen = caplen ? view_of(&vs, owirelen, "I", 1, "wirelen", &c3) : NULL;
    int64_t *ts = wirelen ? view_of(&vs, ots, "l", 1, "ts", &c4) : NULL;
    int64_t *foff = ts ? view_of(&vs, ofoff, "l", 1, "foff", &c5) : NULL;
    int64_t *index = foff ? view_of(&vs, oindex, "l", 1, "index", &c6) : NULL;
    if (!index) {
        views_release(&vs);
        return NULL;
    }
    cap = cap < c2 ? cap : c2; cap = cap < c3 ? cap : c3; cap = cap < c4 ? cap : c4;
    cap = cap < c5 ? cap : c5; cap = cap < c6 ? cap : c6;
    int64_t n = 0, mult = nanosecond ? 1 : 1000;
    int status;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        if (pos >= stop) { status = STOP; break; }
        if (n >= cap) { status = FULL; break; }
        if (pos + 16 > size) { status = NEED; break; }
        int64_t cl = u32(buf, pos + 8, big);
        if (cl > limit) { status = BAD_CAPLEN; break; }
        if (pos + 16 + cl > size) { status = NEED; break; }
        start[n] = pos + 16;
        caplen[n] = (uint32_t)cl;
        wirelen[n] = (uint32_t)u32(buf, pos + 12, big);
        ts[n] = u32(buf, pos, big) * 1000000000LL + u32(buf, pos + 4, big) * mult;
        foff[n] = base + pos;
        index[n] = first_index + n;
        n++;
        pos += 16 + cl;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    return Py_BuildValue("LLi", (long long)n, pos, status);
}

/* Interface time units to ns: kind 0 = 10^-exp (via mul/div), 1 = 2^-exp. */
static inline int64_t
units_to_ns(int64_t units, int64_t kind, int64_t exp, int64_t mul, int64_t div)
{
    if (kind == 0)
        return floordiv(wmul(units, mul), div);
    if (exp > 32) {
        units >>= (exp - 32);
        exp = 32;
    }
    int64_t whole = units >> exp;
    int64_t frac = units & (int64_t)(((uint64_t)1 << exp) - 1);
    return wadd(wmul(whole, 1000000000LL), wmul(frac, 1000000000LL) >> exp);
}

static PyObject *
frame_pcapng(PyObject *self, PyObject *args)
{
    PyObject *obuf, *olink, *okind, *oexp, *omul, *odiv, *ooff, *osnap;
    PyObject *ostart, *ocaplen, *owirelen, *ots, *ofoff, *oindex, *olinktype, *oiface;
    long long pos, n_if, prev_ts, base, first_index;
    int big;
    if (!PyArg_ParseTuple(args, "OLpLOOOOOOOLLLOOOOOOOO", &obuf, &pos, &big, &n_if, &olink, &okind, &oexp, &omul,
                          &odiv, &ooff, &osnap, &prev_ts, &base, &first_index, &ostart, &ocaplen, &owirelen,
                          &ots, &ofoff, &oindex, &olinktype, &oiface))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t size, cap, c[8], ni[7];
    const uint8_t *buf = view_of(&vs, obuf, "B", 0, "buf", &size);
    const uint16_t *if_link = buf ? view_of(&vs, olink, "H", 0, "if_link", &ni[0]) : NULL;
    const int64_t *if_kind = if_link ? view_of(&vs, okind, "l", 0, "if_kind", &ni[1]) : NULL;
    const int64_t *if_exp = if_kind ? view_of(&vs, oexp, "l", 0, "if_exp", &ni[2]) : NULL;
    const int64_t *if_mul = if_exp ? view_of(&vs, omul, "l", 0, "if_mul", &ni[3]) : NULL;
    const int64_t *if_div = if_mul ? view_of(&vs, odiv, "l", 0, "if_div", &ni[4]) : NULL;
    const int64_t *if_off = if_div ? view_of(&vs, ooff, "l", 0, "if_off", &ni[5]) : NULL;
    const int64_t *if_snap = if_off ? view_of(&vs, osnap, "l", 0, "if_snap", &ni[6]) : NULL;
    int64_t *start = if_snap ? view_of(&vs, ostart, "l", 1, "start", &c[0]) : NULL;
    uint32_t *caplen = start ? view_of(&vs, ocaplen, "I", 1, "caplen", &c[1]) : NULL;
    uint32_t *wirelen = caplen ? view_of(&vs, owirelen, "I", 1, "wirelen", &c[2]) : NULL;
    int64_t *ts = wirelen ? view_of(&vs, ots, "l", 1, "ts", &c[3]) : NULL;
    int64_t *foff = ts ? view_of(&vs, ofoff, "l", 1, "foff", &c[4]) : NULL;
    int64_t *index = foff ? view_of(&vs, oindex, "l", 1, "index", &c[5]) : NULL;
    uint16_t *linktype = index ? view_of(&vs, olinktype, "H", 1, "linktype", &c[6]) : NULL;
    uint16_t *iface = linktype ? view_of(&vs, oiface, "H", 1, "iface", &c[7]) : NULL;
    if (!iface) {
        views_release(&vs);
        return NULL;
    }
    for (int i = 0; i < 7; i++) {
        if (ni[i] < n_if || ni[i] < 1) {
            views_release(&vs);
            return PyErr_Format(PyExc_ValueError, "interface arrays shorter than n_if=%lld", n_if);
        }
    }
    cap = c[0];
    for (int i = 1; i < 8; i++)
        cap = cap < c[i] ? cap : c[i];
    int64_t n = 0, need = 12;
    int status;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        if (n >= cap) { status = FULL; break; }
        if (pos + 12 > size) { status = NEED; need = 12; break; }
        int64_t btype = u32(buf, pos, big);
        if (btype != 6 && btype != 3 && btype != 2) { status = OTHER_BLOCK; break; }
        int64_t blen = u32(buf, pos + 4, big);
        int64_t minlen = btype == 3 ? 16 : 32;
        if (blen % 4 != 0 || blen < minlen) { status = BAD_BLOCK_LEN; break; }
        if (blen > MAX_PACKET_BLOCK) { status = ABSURD_BLOCK_LEN; break; }
        if (pos + blen > size) { status = NEED; need = blen; break; }
        if (u32(buf, pos + blen - 4, big) != blen) { status = BAD_TRAILER; break; }
        int64_t ifc, cl, wl, data, t;
        if (btype == 3) {
            if (n_if == 0) { status = BAD_IFACE; break; }
            ifc = 0;
            wl = u32(buf, pos + 8, big);
            cl = wl < blen - 16 ? wl : blen - 16;
            if (if_snap[0] > 0 && if_snap[0] < cl)
                cl = if_snap[0];
            data = pos + 12;
            t = prev_ts;
        } else {
            ifc = btype == 6 ? u32(buf, pos + 8, big) : u16(buf, pos + 8, big);
            int64_t hi = u32(buf, pos + 12, big), lo = u32(buf, pos + 16, big);
            cl = u32(buf, pos + 20, big);
            wl = u32(buf, pos + 24, big);
            if (ifc >= n_if) { status = BAD_IFACE; break; }
            if (cl > blen - 32 || cl > MAX_CAPLEN) { status = BAD_BLOCK_CAPLEN; break; }
            data = pos + 28;
            int64_t units = (int64_t)(((uint64_t)hi << 32) | (uint64_t)lo);
            t = wadd(units_to_ns(units, if_kind[ifc], if_exp[ifc], if_mul[ifc], if_div[ifc]), if_off[ifc]);
        }
        start[n] = data;
        caplen[n] = (uint32_t)cl;
        wirelen[n] = (uint32_t)wl;
        ts[n] = t;
        foff[n] = base + pos;
        index[n] = first_index + n;
        linktype[n] = if_link[ifc];
        iface[n] = (uint16_t)ifc;
        prev_ts = t;
        n++;
        pos += blen;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    return Py_BuildValue("LLiLL", (long long)n, pos, status, prev_ts, (long long)need);
}

/* Header at p could be a real record header (caller checked p + 16 <= size). */
static inline int
plausible(const uint8_t *b, int64_t p, int big, int nanosecond, int64_t limit)
{
    if (u32(b, p + 4, big) >= (nanosecond ? 1000000000LL : 1000000LL))
        return 0;
    int64_t cl = u32(b, p + 8, big);
    if (cl > limit)
        return 0;
    int64_t wl = u32(b, p + 12, big);
    /* wirelen below caplen happens in real files only with tiny or zero wirelen */
    return !(wl < cl && wl >= 64);
}

static PyObject *
resync_pcap(PyObject *self, PyObject *args)
{
    PyObject *obuf;
    long long first, last, limit, chain, span, back_tol, reach, min_ts;
    int at_eof, big, nanosecond;
    if (!PyArg_ParseTuple(args, "OLLpppLLLLLL", &obuf, &first, &last, &at_eof, &big, &nanosecond, &limit, &chain,
                          &span, &back_tol, &reach, &min_ts))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t size;
    const uint8_t *buf = view_of(&vs, obuf, "B", 0, "buf", &size);
    if (!buf)
        return NULL;
    int64_t mult = nanosecond ? 1 : 1000, result = -1;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t cand = first; cand < last && result == -1; cand++) {
        int64_t p = cand, count = 0, prev = -((int64_t)1 << 62);
        int ok = 0;
        for (;;) {
            if (p == size && at_eof) { ok = count > 0; break; }
            if (p + 16 > size) {
                if (!at_eof) { result = -2; break; }
                ok = count >= chain;
                break;
            }
            if (!plausible(buf, p, big, nanosecond, limit))
                break;
            int64_t t = u32(buf, p, big) * 1000000000LL + u32(buf, p + 4, big) * mult;
            if (t < prev - back_tol || t < min_ts)
                break;
            if (t > prev)
                prev = t;
            int64_t cl = u32(buf, p + 8, big);
            if (p + 16 + cl > size) {
                if (!at_eof) { result = -2; break; }
                ok = count >= chain;
                break;
            }
            count++;
            p += 16 + cl;
            if (count >= chain && p - cand >= span && p >= reach) { ok = 1; break; }
        }
        if (ok && result == -1)
            result = cand;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    return PyLong_FromLongLong(result);
}

static PyObject *
walk_chain(PyObject *self, PyObject *args)
{
    PyObject *obuf;
    long long pos, target, limit;
    int big;
    if (!PyArg_ParseTuple(args, "OLLpL", &obuf, &pos, &target, &big, &limit))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t size;
    const uint8_t *buf = view_of(&vs, obuf, "B", 0, "buf", &size);
    if (!buf)
        return NULL;
    int status = 0;
    while (pos < target) {
        if (pos + 16 > size) { status = -2; break; }
        int64_t cl = u32(buf, pos + 8, big);
        if (cl > limit) { status = -1; break; }
        if (pos + 16 + cl > size && pos + 16 + cl < target) { status = -2; break; }
        pos += 16 + cl;
    }
    views_release(&vs);
    return Py_BuildValue("Li", pos, status);
}

static PyObject *
chains_meet(PyObject *self, PyObject *args)
{
    PyObject *obuf;
    long long a, b, stop, limit;
    int big;
    if (!PyArg_ParseTuple(args, "OLLLpL", &obuf, &a, &b, &stop, &big, &limit))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t size;
    const uint8_t *buf = view_of(&vs, obuf, "B", 0, "buf", &size);
    if (!buf)
        return NULL;
    int met = -1;
    while (a != b) {
        if (a > b) { long long x = a; a = b; b = x; }
        if (a >= stop || a + 16 > size) { met = 0; break; }
        int64_t cl = u32(buf, a + 8, big);
        if (cl > limit) { met = 0; break; }
        a += 16 + cl;
    }
    views_release(&vs);
    return PyBool_FromLong(met == 0 ? 0 : a < stop);
}

static PyMethodDef methods[] = {
    {"frame_pcap", frame_pcap, METH_VARARGS, "Classic pcap records from pos; returns (n, pos, status)."},
    {"frame_pcapng", frame_pcapng, METH_VARARGS,
     "pcapng packet blocks from pos until any other block; returns (n, pos, status, prev_ts, need)."},
    {"resync_pcap", resync_pcap, METH_VARARGS, "First offset in [first, last) where a plausible chain begins."},
    {"walk_chain", walk_chain, METH_VARARGS, "Follow record lengths to the first header at/after target."},
    {"chains_meet", chains_meet, METH_VARARGS, "Whether the record chains from a and b share a boundary."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_framing", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__framing(void)
{
    static const int_const_t consts[] = {
        {"MAX_CAPLEN", MAX_CAPLEN}, {"MAX_PACKET_BLOCK", MAX_PACKET_BLOCK}, {"NEED", NEED}, {"FULL", FULL},
        {"STOP", STOP}, {"OTHER_BLOCK", OTHER_BLOCK}, {"BAD_CAPLEN", BAD_CAPLEN}, {"BAD_BLOCK_LEN", BAD_BLOCK_LEN},
        {"ABSURD_BLOCK_LEN", ABSURD_BLOCK_LEN}, {"BAD_TRAILER", BAD_TRAILER}, {"BAD_IFACE", BAD_IFACE},
        {"BAD_BLOCK_CAPLEN", BAD_BLOCK_CAPLEN},
    };
    return with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
}
