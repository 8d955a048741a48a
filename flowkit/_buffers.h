/* Shared by flowkit's C kernels: typed views of numpy arrays through the buffer protocol.
 *
 * Why the buffer protocol and not numpy's C API: the kernels then build without numpy
 * headers, and a wrong dtype or a strided array is refused with a TypeError naming the
 * argument instead of being read as the wrong bytes.
 */
#ifndef FLOWKIT_BUFFERS_H
#define FLOWKIT_BUFFERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_VIEWS 64

/* The views one call holds; released together by views_release. */
typedef struct {
    Py_buffer v[MAX_VIEWS];
    int n;
} views_t;

/* C-contiguous view of `obj` whose items have numpy/struct format `fmt` ("l" int64,
 * "L" uint64, "b" int8, "B" uint8, "?" bool). Returns the data pointer, or NULL with a
 * TypeError set. `*count` receives the number of items. */
static void *
view_of(views_t *vs, PyObject *obj, const char *fmt, int writable, const char *name, Py_ssize_t *count)
{
    if (vs->n >= MAX_VIEWS) {
        PyErr_SetString(PyExc_RuntimeError, "too many array arguments");
        return NULL;
    }
    Py_buffer *b = &vs->v[vs->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, b, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name, writable ? " writable" : "");
        return NULL;
    }
    vs->n++;
    const char *f = b->format ? b->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@')
        f++;
    int same = strcmp(f, fmt) == 0 ||
               (strcmp(fmt, "l") == 0 && strcmp(f, "q") == 0) ||
               (strcmp(fmt, "L") == 0 && strcmp(f, "Q") == 0);
    if (!same) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of format '%s', got '%s'", name, fmt, f);
        return NULL;
    }
    if (count)
        *count = b->len / (b->itemsize ? b->itemsize : 1);
    return b->buf;
}

static void
views_release(views_t *vs)
{
    for (int i = 0; i < vs->n; i++)
        PyBuffer_Release(&vs->v[i]);
    vs->n = 0;
}

/* Integer constants a kernel module exports (statuses, layouts), set in one place. */
typedef struct {
    const char *name;
    long long value;
} int_const_t;

/* Add every constant to module m; on failure drops m and returns NULL. */
static PyObject *
with_int_constants(PyObject *m, const int_const_t *consts, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        PyObject *v = PyLong_FromLongLong(consts[i].value);
        if (!v || PyModule_AddObject(m, consts[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}

#endif
