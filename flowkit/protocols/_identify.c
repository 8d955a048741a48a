/* Python binding of the service rules (_identify.h), for tests and for one-off use:
 * the flow kernels include the header and call svc_packet on their own state. */
#include "_buffers.h"
#include "protocols/_identify.h"

#define NAME_MAX_ 256

#define SVC_NAME(id, name) name,
static const char *const SVC_NAMES[] = {SVC_LIST(SVC_NAME)};
#undef SVC_NAME

PyDoc_STRVAR(identify_doc,
"identify(packets, tcp=True, partial=False) -> (services, server_name, expectations, read)\n"
"--\n\n"
"Run one connection's payloads through the rules, as the flow kernels do.\n\n"
"packets: sequence of (is_orig, payload bytes) in capture order; partial: a TCP connection\n"
"whose SYN was not seen (text protocols are not read). services: tuple of\n"
"Zeek service names confirmed, sorted; server_name: TLS SNI or HTTP Host ('' when\n"
"none); expectations: list of (service, peer, address or None, port) data connections\n"
"announced (the address is 16 bytes, IPv4 mapped; None means the control connection's\n"
"originator (peer 0) or responder (peer 1)); read: for each packet, whether the rules\n"
"still read it (False once nothing more can be learnt).");

static PyObject *
identify(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"packets", "tcp", "partial", NULL};
    PyObject *packets;
    int tcp = 1, partial = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pp", kwlist, &packets, &tcp, &partial))
        return NULL;
    PyObject *seq = PySequence_Fast(packets, "packets must be a sequence of (is_orig, bytes)");
    if (!seq)
        return NULL;
    svc_t s = {0, 0};
    char name[NAME_MAX_] = {0};
    PyObject *expect = PyList_New(0), *read = PyList_New(0), *result = NULL;
    if (!expect || !read)
        goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        int is_orig;
        Py_buffer b;
        if (!PyArg_ParseTuple(item, "py*", &is_orig, &b))
            goto done;
        int reading = !svc_settled(&s);
        if (PyList_Append(read, reading ? Py_True : Py_False) < 0) {
            PyBuffer_Release(&b);
            goto done;
        }
        if (reading) {
            svc_expect_t ex;
            svc_packet(&s, b.buf, b.len, is_orig, tcp, partial, name, NAME_MAX_, &ex);
            if (ex.service >= 0) {
                PyObject *addr = ex.has_addr ? PyBytes_FromStringAndSize((const char *)ex.addr, 16)
                                             : (Py_INCREF(Py_None), Py_None);
                PyObject *t = addr ? Py_BuildValue("(siNi)", SVC_NAMES[ex.service], ex.peer, addr, (int)ex.port)
                                   : NULL;
                if (!t || PyList_Append(expect, t) < 0) {
                    Py_XDECREF(t);
                    PyBuffer_Release(&b);
                    goto done;
                }
                Py_DECREF(t);
            }
        }
        PyBuffer_Release(&b);
    }
    uint32_t c = svc_confirmed(&s);
    int k = 0;
    for (int j = 0; j < SV_COUNT; j++)
        k += (c >> j) & 1;
    PyObject *names = PyTuple_New(k);
    if (!names)
        goto done;
    for (int j = 0, at = 0; j < SV_COUNT; j++)
        if ((c >> j) & 1)
            PyTuple_SET_ITEM(names, at++, PyUnicode_FromString(SVC_NAMES[j]));
    result = Py_BuildValue("(NsOO)", names, name, expect, read);
done:
    Py_DECREF(seq);
    Py_XDECREF(expect);
    Py_XDECREF(read);
    return result;
}

static PyMethodDef methods[] = {
    {"identify", (PyCFunction)(void (*)(void))identify, METH_VARARGS | METH_KEYWORDS, identify_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.protocols._identify",
    "Payload-based service identification rules (see flowkit.protocols).", -1, methods,
};

PyMODINIT_FUNC
PyInit__identify(void)
{
    static const int_const_t consts[] = {
        {"SVC_LOOK", SVC_LOOK}, {"SVC_LOOK_TLS", SVC_LOOK_TLS}, {"SV_COUNT", SV_COUNT}, {"NAME_MAX", NAME_MAX_},
    };
    PyObject *m = with_int_constants(PyModule_Create(&module), consts, sizeof consts / sizeof consts[0]);
    if (!m)
        return NULL;
    PyObject *names = PyTuple_New(SV_COUNT);
    for (int j = 0; names && j < SV_COUNT; j++)
        PyTuple_SET_ITEM(names, j, PyUnicode_FromString(SVC_NAMES[j]));
    if (!names || PyModule_AddObject(m, "SERVICES", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
