/* Kernel arguments of flows/: named column tables, as decode/_decode.c's COLUMNS.
 *
 * A kernel declares a struct of typed pointers and a table naming each field with its
 * item format, items per row and whether it is written. Python passes a tuple of arrays
 * in the table's order (the module exports the names, so callers build the tuple by
 * name); bind_columns checks each array and fills the struct. One convention for every
 * kernel: (state tables..., packet table, options tuple).
 */
#ifndef FLOWKIT_COLUMNS_H
#define FLOWKIT_COLUMNS_H

#include <stddef.h>

#include "_buffers.h"

typedef struct {
    const char *name, *fmt;
    int width; /* items per row */
    size_t offset; /* of the pointer in the kernel's struct */
    int writable;
} column_t;

/* Bind the arrays of `tuple` (in the order of `spec`) to the pointers of `dst`. Every
 * array must have `*rows` rows; *rows < 0 takes the first array's. Returns 0 with an
 * exception set when a count, format or the tuple's length is wrong. */
static int
bind_columns(views_t *vs, PyObject *tuple, const column_t *spec, int n, void *dst, Py_ssize_t *rows,
             const char *what)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != n) {
        PyErr_Format(PyExc_TypeError, "%s: expected a tuple of %d arrays", what, n);
        return 0;
    }
    for (int j = 0; j < n; j++) {
        Py_ssize_t count;
        void *ptr = view_of(vs, PyTuple_GET_ITEM(tuple, j), spec[j].fmt, spec[j].writable, spec[j].name, &count);
        if (!ptr)
            return 0;
        if (*rows < 0 && count % spec[j].width == 0)
            *rows = count / spec[j].width;
        if (count != *rows * spec[j].width) {
            PyErr_Format(PyExc_ValueError, "%s.%s: %zd items, expected %zd rows of %d", what, spec[j].name, count,
                         *rows, spec[j].width);
            return 0;
        }
        memcpy((char *)dst + spec[j].offset, &ptr, sizeof ptr);
    }
    return 1;
}

/* Integer options from a tuple, in the order of `names`. */
static int
bind_options(PyObject *tuple, const char *const *names, int64_t *const *out, int n, const char *what)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != n) {
        PyErr_Format(PyExc_TypeError, "%s: expected a tuple of %d integers", what, n);
        return 0;
    }
    for (int j = 0; j < n; j++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, j));
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s.%s: expected an int64 integer", what, names[j]);
            return 0;
        }
        *out[j] = v;
    }
    return 1;
}

/* A tuple of the names of a column table (what the module exports for callers). */
static PyObject *
column_names(const column_t *spec, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int j = 0; t && j < n; j++) {
        PyObject *s = PyUnicode_FromString(spec[j].name);
        if (!s) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, j, s);
    }
    return t;
}

static PyObject *
string_tuple(const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);
    for (int j = 0; t && j < n; j++) {
        PyObject *s = PyUnicode_FromString(names[j]);
        if (!s) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, j, s);
    }
    return t;
}

#endif
