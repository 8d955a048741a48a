/* Text columns in C: address text for binary(16) columns, and gathering string rows.
 *
 * Address text: dotted quad for IPv4-mapped addresses, otherwise
 * compressed IPv6 exactly as Python's ipaddress writes it (lower-case hextets without
 * leading zeros; the first longest run of two or more zero hextets becomes "::").
 * Why C: one call formats a whole column into Arrow string buffers (offsets + data)
 * without a Python string per row.
 */
#include "_buffers.h"

#define MAX_TEXT 39 /* ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff */

static int
put_dec(char *o, unsigned v)
{
    char tmp[3];
    int n = 0, k = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        o[k++] = tmp[--n];
    return k;
}

static int
put_hex(char *o, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    int k = 0, started = 0;
    for (int shift = 12; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 0xF;
        if (d || started || shift == 0) {
            o[k++] = digits[d];
            started = 1;
        }
    }
    return k;
}

static int
format_one(const uint8_t *a, char *o)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    int k = 0;
    if (memcmp(a, mapped, 12) == 0) {
        for (int i = 12; i < 16; i++) {
            if (i > 12)
                o[k++] = '.';
            k += put_dec(o + k, a[i]);
        }
        return k;
    }
    unsigned w[8];
    for (int i = 0; i < 8; i++)
        w[i] = ((unsigned)a[2 * i] << 8) | a[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (w[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && w[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    if (best_len < 2)
        best = -1;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            o[k++] = ':';
            if (i == 0)
                o[k++] = ':';
            i += best_len - 1;
            continue;
        }
        k += put_hex(o + k, w[i]);
        if (i < 7)
            o[k++] = ':';
    }
    return k;
}

PyDoc_STRVAR(format_doc,
"format_addresses(addrs, offsets, data) -> int\n"
"--\n\n"
"Text of n 16-byte addresses (uint8, n*16) into Arrow string buffers: offsets int32\n"
"(n+1), data uint8 (at least 39*n). Returns the number of data bytes used.");

static PyObject *
format_addresses(PyObject *self, PyObject *args)
{
    PyObject *oa, *oo, *od;
    if (!PyArg_ParseTuple(args, "OOO", &oa, &oo, &od))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t na, no, nd;
    const uint8_t *a = view_of(&vs, oa, "B", 0, "addrs", &na);
    int32_t *off = a ? view_of(&vs, oo, "i", 1, "offsets", &no) : NULL;
    char *data = off ? view_of(&vs, od, "B", 1, "data", &nd) : NULL;
    if (!data) {
        views_release(&vs);
        return NULL;
    }
    Py_ssize_t n = na / 16;
    if (na != 16 * n || no != n + 1 || nd < MAX_TEXT * n || (int64_t)MAX_TEXT * n > INT32_MAX) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "format_addresses: buffers do not fit %zd addresses", n);
    }
    Py_ssize_t pos = 0;
    Py_BEGIN_ALLOW_THREADS
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        pos += format_one(a + 16 * i, data + pos);
        off[i + 1] = (int32_t)pos;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    return PyLong_FromSsize_t(pos);
}

PyDoc_STRVAR(take_doc,
"take_strings(offsets, data, indices, out_offsets, out_data) -> None\n"
"--\n\n"
"Gather string rows: out row i is row indices[i] of (offsets int32 (n+1), data uint8).\n"
"out_offsets int32 (k+1); out_data uint8 sized by the caller to the gathered total.");

static PyObject *
take_strings(PyObject *self, PyObject *args)
{
    PyObject *oo, *od, *oi, *ooo, *ood;
    if (!PyArg_ParseTuple(args, "OOOOO", &oo, &od, &oi, &ooo, &ood))
        return NULL;
    views_t vs = {.n = 0};
    Py_ssize_t no, nd, ni, nno, nnd;
    const int32_t *off = view_of(&vs, oo, "i", 0, "offsets", &no);
    const uint8_t *data = off ? view_of(&vs, od, "B", 0, "data", &nd) : NULL;
    const int64_t *idx = data ? view_of(&vs, oi, "l", 0, "indices", &ni) : NULL;
    int32_t *out_off = idx ? view_of(&vs, ooo, "i", 1, "out_offsets", &nno) : NULL;
    uint8_t *out = out_off ? view_of(&vs, ood, "B", 1, "out_data", &nnd) : NULL;
    if (!out) {
        views_release(&vs);
        return NULL;
    }
    int ok = nno == ni + 1 && no >= 1;
    int64_t total = 0;
    for (Py_ssize_t i = 0; ok && i < ni; i++) {
        int64_t r = idx[i];
        ok = r >= 0 && r < no - 1 && off[r] <= off[r + 1] && off[r + 1] <= nd;
        if (ok)
            total += off[r + 1] - off[r];
    }
    if (!ok || total > nnd || total > INT32_MAX) {
        views_release(&vs);
        return PyErr_Format(PyExc_ValueError, "take_strings: index or buffer out of range");
    }
    Py_BEGIN_ALLOW_THREADS
    int64_t pos = 0;
    out_off[0] = 0;
    for (Py_ssize_t i = 0; i < ni; i++) {
        int64_t r = idx[i], len = off[r + 1] - off[r];
        memcpy(out + pos, data + off[r], (size_t)len);
        pos += len;
        out_off[i + 1] = (int32_t)pos;
    }
    Py_END_ALLOW_THREADS
    views_release(&vs);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"format_addresses", format_addresses, METH_VARARGS, format_doc},
    {"take_strings", take_strings, METH_VARARGS, take_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "flowkit.decode._text", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__text(void)
{
    return PyModule_Create(&module);
}
