/* Community ID v1 (seed 0) for whole columns: SHA-1 of one padded block, then base64.
 *
 * The hashed message (16 bytes for IPv4, 40 for IPv6) always fits one 64-byte SHA-1
 * block, so a dedicated loop beats hashlib's per-call overhead by orders of magnitude
 * on many flows. community.py documents the message layout.
 */
#include "_buffers.h"

#define WIDTH 30 /* "1:" + 28 base64 characters of the 20-byte digest */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static inline uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

/* SHA-1 of one already padded 64-byte block into `out` (20 bytes). */
static void
sha1_block(const uint8_t *block, uint8_t *out)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)block[4 * i] << 24) | ((uint32_t)block[4 * i + 1] << 16) |
               ((uint32_t)block[4 * i + 2] << 8) | block[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    /* four loops of 20 rounds: no per-round branch on the round number */
#define ROUND(f, k)                                        \
    do {                                                   \
        uint32_t t = rotl(a, 5) + (f) + e + (k) + w[i];    \
        e = d, d = c, c = rotl(b, 30), b = a, a = t;       \
    } while (0)
    int i = 0;
    for (; i < 20; i++)
        ROUND((b & c) | (~b & d), 0x5A827999u);
    for (; i < 40; i++)
        ROUND(b ^ c ^ d, 0x6ED9EBA1u);
    for (; i < 60; i++)
        ROUND((b & c) | (b & d) | (c & d), 0x8F1BBCDCu);
    for (; i < 80; i++)
        ROUND(b ^ c ^ d, 0xCA62C1D6u);
#undef ROUND
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    for (int j = 0; j < 5; j++)
        for (int m = 0; m < 4; m++)
            out[4 * j + m] = (uint8_t)(h[j] >> (24 - 8 * m));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

/* The same with the CPU's SHA extensions (x86 SHA-NI: ~10x fewer cycles a block),
 * chosen at import when the CPU has them (CPUID leaf 7, EBX bit 29). */
#define NI __attribute__((target("sha,sse4.1,ssse3")))

NI static inline void
ni_rounds(__m128i *abcd, __m128i *e0, const uint8_t *block)
{
    const __m128i MASK = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    __m128i ABCD = *abcd, E0 = *e0, E1, ABCD_SAVE = ABCD, E0_SAVE = E0;
    __m128i M0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 0)), MASK);
    __m128i M1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16)), MASK);
    __m128i M2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 32)), MASK);
    __m128i M3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 48)), MASK);

    /* rounds 0-15: the 16 message words */
    E0 = _mm_add_epi32(E0, M0);
    E1 = ABCD;
    ABCD = _mm_sha1rnds4_epu32(ABCD, E0, 0);
    E1 = _mm_sha1nexte_epu32(E1, M1);
    E0 = ABCD;
    ABCD = _mm_sha1rnds4_epu32(ABCD, E1, 0);
    M0 = _mm_sha1msg1_epu32(M0, M1);
    E0 = _mm_sha1nexte_epu32(E0, M2);
    E1 = ABCD;
    ABCD = _mm_sha1rnds4_epu32(ABCD, E0, 0);
    M1 = _mm_sha1msg1_epu32(M1, M2);
    M0 = _mm_xor_si128(M0, M2);
    E1 = _mm_sha1nexte_epu32(E1, M3);
    E0 = ABCD;
    M0 = _mm_sha1msg2_epu32(M0, M3);
    ABCD = _mm_sha1rnds4_epu32(ABCD, E1, 0);
    M2 = _mm_sha1msg1_epu32(M2, M3);
    M1 = _mm_xor_si128(M1, M3);

    /* rounds 16-67: one step of four rounds each, the schedule rotating over M0..M3 */
#define STEP(EA, EB, MA, MB, MC, MD, F)          \
    EA = _mm_sha1nexte_epu32(EA, MA);            \
    EB = ABCD;                                   \
    MB = _mm_sha1msg2_epu32(MB, MA);             \
    ABCD = _mm_sha1rnds4_epu32(ABCD, EA, F);     \
    MD = _mm_sha1msg1_epu32(MD, MA);             \
    MC = _mm_xor_si128(MC, MA);
    STEP(E0, E1, M0, M1, M2, M3, 0) /* 16-19 */
    STEP(E1, E0, M1, M2, M3, M0, 1) /* 20-23 */
    STEP(E0, E1, M2, M3, M0, M1, 1) /* 24-27 */
    STEP(E1, E0, M3, M0, M1, M2, 1) /* 28-31 */
    STEP(E0, E1, M0, M1, M2, M3, 1) /* 32-35 */
    STEP(E1, E0, M1, M2, M3, M0, 1) /* 36-39 */
    STEP(E0, E1, M2, M3, M0, M1, 2) /* 40-43 */
    STEP(E1, E0, M3, M0, M1, M2, 2) /* 44-47 */
    STEP(E0, E1, M0, M1, M2, M3, 2) /* 48-51 */
    STEP(E1, E0, M1, M2, M3, M0, 2) /* 52-55 */
    STEP(E0, E1, M2, M3, M0, M1, 2) /* 56-59 */
    STEP(E1, E0, M3, M0, M1, M2, 3) /* 60-63 */
    STEP(E0, E1, M0, M1, M2, M3, 3) /* 64-67 */
#undef STEP
    /* rounds 68-79: the schedule's last words */
    E1 = _mm_sha1nexte_epu32(E1, M1);
    E0 = ABCD;
    M2 = _mm_sha1msg2_epu32(M2, M1);
    ABCD = _mm_sha1rnds4_epu32(ABCD, E1, 3);
    M3 = _mm_xor_si128(M3, M1);
    E0 = _mm_sha1nexte_epu32(E0, M2);
    E1 = ABCD;
    M3 = _mm_sha1msg2_epu32(M3, M2);
    ABCD = _mm_sha1rnds4_epu32(ABCD, E0, 3);
    E1 = _mm_sha1nexte_epu32(E1, M3);
    E0 = ABCD;
    ABCD = _mm_sha1rnds4_epu32(ABCD, E1, 3);

    *e0 = _mm_sha1nexte_epu32(E0, E0_SAVE);
    *abcd = _mm_add_epi32(ABCD, ABCD_SAVE);
}

NI static void
sha1_block_ni(const uint8_t *block, uint8_t *out)
{
    __m128i abcd = _mm_set_epi32(0x67452301, (int)0xEFCDAB89u, (int)0x98BADCFEu, 0x10325476);
    __m128i e0 = _mm_set_epi32((int)0xC3D2E1F0u, 0, 0, 0);
    ni_rounds(&abcd, &e0, block);
    uint32_t h[5] = {(uint32_t)_mm_extract_epi32(abcd, 3), (uint32_t)_mm_extract_epi32(abcd, 2),
                     (uint32_t)_mm_extract_epi32(abcd, 1), (uint32_t)_mm_extract_epi32(abcd, 0),
                     (uint32_t)_mm_extract_epi32(e0, 3)};
    for (int j = 0; j < 5; j++)
        for (int m = 0; m < 4; m++)
            out[4 * j + m] = (uint8_t)(h[j] >> (24 - 8 * m));
}

static int
cpu_has_sha(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29) & 1;
}
#else
#define sha1_block_ni sha1_block
static int cpu_has_sha(void) { return 0; }
#endif

static void (*sha1_one)(const uint8_t *, uint8_t *) = sha1_block; /* set at import */

typedef struct {
    const int64_t *ahi, *alo, *bhi, *blo, *aport, *bport, *proto;
    const uint8_t *v4;
    uint8_t *out;
    Py_ssize_t n;
} columns_t;

static void
fill(const columns_t *c)
{
    uint8_t block[64], digest[21];
    for (Py_ssize_t r = 0; r < c->n; r++) {
        memset(block, 0, sizeof block);
        int n = 2; /* seed 0 */
        if (c->v4[r]) {
            uint64_t xs[2] = {(uint64_t)c->alo[r], (uint64_t)c->blo[r]};
            for (int x = 0; x < 2; x++)
                for (int m = 0; m < 4; m++)
                    block[n++] = (uint8_t)(xs[x] >> (24 - 8 * m));
        } else {
            uint64_t xs[4] = {(uint64_t)c->ahi[r], (uint64_t)c->alo[r], (uint64_t)c->bhi[r], (uint64_t)c->blo[r]};
            for (int x = 0; x < 4; x++)
                for (int m = 0; m < 8; m++)
                    block[n++] = (uint8_t)(xs[x] >> (56 - 8 * m));
        }
        uint64_t ap = (uint64_t)c->aport[r], bp = (uint64_t)c->bport[r];
        int64_t proto = c->proto[r];
        block[n] = (uint8_t)proto;
        n += 2; /* proto, padding */
        /* the spec hashes ports only for protocols that have them (ICMP: type/code) */
        if (proto == 1 || proto == 6 || proto == 17 || proto == 58 || proto == 132) {
            block[n] = (uint8_t)(ap >> 8);
            block[n + 1] = (uint8_t)ap;
            block[n + 2] = (uint8_t)(bp >> 8);
            block[n + 3] = (uint8_t)bp;
            n += 4;
        }
        block[n] = 0x80;
        int bits = n * 8;
        block[62] = (uint8_t)(bits >> 8);
        block[63] = (uint8_t)bits;
        sha1_one(block, digest);
        digest[20] = 0;
        uint8_t *o = c->out + r * WIDTH;
        o[0] = '1';
        o[1] = ':';
        for (int g = 0; g < 7; g++) { /* 21 bytes -> 28 characters; the last one is padding '=' */
            uint32_t v = ((uint32_t)digest[3 * g] << 16) | ((uint32_t)digest[3 * g + 1] << 8) | digest[3 * g + 2];
            for (int m = 0; m < 4; m++)
                o[2 + 4 * g + m] = (uint8_t)B64[(v >> (18 - 6 * m)) & 63];
        }
        o[WIDTH - 1] = '=';
    }
}

PyDoc_STRVAR(community_doc,
"community(ahi, alo, bhi, blo, aport, bport, proto, v4, out)\n"
"--\n\n"
"Community ID strings of n endpoint pairs into ``out`` (uint8, (n, 30)).\n\n"
"Addresses are int64 bit patterns of the big-endian high/low address words (IPv4:\n"
"the low 32 bits of the low word), ports and proto int64, ``v4`` bool.");

static PyObject *
community(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[] = {"ahi", "alo", "bhi", "blo", "aport", "bport", "proto"};
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "community() takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    views_t vs = {.n = 0};
    columns_t c;
    const int64_t **cols[] = {&c.ahi, &c.alo, &c.bhi, &c.blo, &c.aport, &c.bport, &c.proto};
    Py_ssize_t len, nout;
    PyObject *result = NULL;
    c.n = -1;
    for (int j = 0; j < 7; j++) {
        if (!(*cols[j] = view_of(&vs, args[j], "l", 0, names[j], &len)))
            goto done;
        if (c.n < 0) {
            c.n = len;
        } else if (len != c.n) {
            PyErr_Format(PyExc_ValueError, "%s: %zd rows, ahi has %zd", names[j], len, c.n);
            goto done;
        }
    }
    if (!(c.v4 = view_of(&vs, args[7], "?", 0, "v4", &len)))
        goto done;
    if (len != c.n) {
        PyErr_Format(PyExc_ValueError, "v4: %zd rows, ahi has %zd", len, c.n);
        goto done;
    }
    if (!(c.out = view_of(&vs, args[8], "B", 1, "out", &nout)))
        goto done;
    if (nout != c.n * WIDTH) {
        PyErr_Format(PyExc_ValueError, "out: expected %zd rows of %d bytes, got %zd bytes", c.n, WIDTH, nout);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    fill(&c);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    views_release(&vs);
    return result;
}

PyDoc_STRVAR(use_sha_extensions_doc,
"use_sha_extensions(on) -> bool\n"
"--\n\n"
"Hash with the CPU's SHA extensions when ``on`` and the CPU has them (the default),\n"
"else with the portable code; returns whether the extensions are now used.");

static PyObject *
use_sha_extensions(PyObject *self, PyObject *on)
{
    int flag = PyObject_IsTrue(on);
    if (flag < 0)
        return NULL;
    sha1_one = flag && cpu_has_sha() ? sha1_block_ni : sha1_block;
    return PyBool_FromLong(sha1_one != sha1_block);
}

static PyMethodDef methods[] = {
    {"community", (PyCFunction)(void (*)(void))community, METH_FASTCALL, community_doc},
    {"use_sha_extensions", use_sha_extensions, METH_O, use_sha_extensions_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowkit.flows._sha1", "Community ID v1 (seed 0) for whole columns.", -1, methods,
};

PyMODINIT_FUNC
PyInit__sha1(void)
{
    PyObject *mod = PyModule_Create(&module);
    if (cpu_has_sha())
        sha1_one = sha1_block_ni;
    if (mod && PyModule_AddIntConstant(mod, "WIDTH", WIDTH) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
