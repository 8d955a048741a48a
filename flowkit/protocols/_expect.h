/* Data connections announced on control channels (FTP PORT/PASV/EPRT/EPSV, IRC DCC SEND),
 * waiting for the connection that uses them, as Zeek's Analyzer::schedule_analyzer does.
 *
 * The table is an int64 array of (1 + EXPECT_CAP) rows of EXPECT_WIDTH columns that the
 * flow state keeps across batches; row 0 holds the number of entries. An entry is the
 * responder address (two big-endian 64-bit words, IPv4 mapped) and port the new TCP
 * connection will go to, the service to name and when the announcement expires; it is
 * used once. Lookups scan the table, which is empty for almost every capture.
 */
#ifndef FLOWKIT_EXPECT_H
#define FLOWKIT_EXPECT_H

#include <stdint.h>

#define EXPECT_CAP 256
#define EXPECT_NS (300LL * 1000000000LL) /* Zeek's ftp and irc scripts schedule for 5 minutes */
enum { X_HI, X_LO, X_PORT, X_SERVICE, X_EXPIRES, EXPECT_WIDTH };

/* Add an announcement at time t; a full table drops the entry that expires first. */
static __attribute__((noinline)) void
expect_add(int64_t *E, int64_t hi, int64_t lo, int64_t port, int64_t service, int64_t t)
{
    int64_t n = E[0], at = n;
    if (n >= EXPECT_CAP) {
        at = 0;
        for (int64_t i = 1; i < n; i++)
            if (E[(1 + i) * EXPECT_WIDTH + X_EXPIRES] < E[(1 + at) * EXPECT_WIDTH + X_EXPIRES])
                at = i;
    } else {
        E[0] = n + 1;
    }
    int64_t *e = E + (1 + at) * EXPECT_WIDTH;
    e[X_HI] = hi, e[X_LO] = lo, e[X_PORT] = port, e[X_SERVICE] = service, e[X_EXPIRES] = t + EXPECT_NS;
}

/* The service announced for a new connection to (hi, lo, port) at time t, or -1; the entry
 * is used up, and expired entries met on the way are dropped. */
static __attribute__((noinline)) int64_t
expect_take(int64_t *E, int64_t hi, int64_t lo, int64_t port, int64_t t)
{
    int64_t found = -1;
    for (int64_t i = 0; i < E[0];) {
        int64_t *e = E + (1 + i) * EXPECT_WIDTH;
        int hit = found < 0 && e[X_HI] == hi && e[X_LO] == lo && e[X_PORT] == port && t < e[X_EXPIRES];
        if (hit)
            found = e[X_SERVICE];
        if (hit || t >= e[X_EXPIRES]) {
            int64_t *last = E + E[0] * EXPECT_WIDTH;
            for (int k = 0; k < EXPECT_WIDTH; k++)
                e[k] = last[k];
            E[0]--;
        } else {
            i++;
        }
    }
    return found;
}

#endif
