/* Internet checksums (RFC 1071) as Zeek verifies them without -C (decode with
 * verify_checksums): the IPv4 header (packet_analysis/protocol/ip/IP.cc), TCP and UDP with
 * their pseudo-header (tcp/TCP.cc, udp/UDP.cc), ICMP over its message and ICMPv6 with the
 * IPv6 pseudo-header (icmp/ICMP.cc). A correct message sums to 0xFFFF. */
#ifndef FLOWKIT_CHECKSUM_H
#define FLOWKIT_CHECKSUM_H

#include <stdint.h>

/* One's-complement sum of n bytes (an odd last byte padded with zero), not folded. */
static inline uint64_t
sum_bytes(const uint8_t *b, int64_t n, uint64_t acc)
{
    int64_t j = 0;
    for (; j + 1 < n; j += 2)
        acc += ((uint32_t)b[j] << 8) | b[j + 1];
    if (j < n)
        acc += (uint32_t)b[j] << 8;
    return acc;
}

static inline uint32_t
fold(uint64_t s)
{
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint32_t)s;
}

/* The IPv4 header of ihl bytes at h. */
static inline int
ipv4_header_ok(const uint8_t *h, int64_t ihl)
{
    return fold(sum_bytes(h, ihl, 0)) == 0xFFFF;
}

/* A transport message of len bytes at m, with the pseudo-header of addresses src/dst
 * (16 bytes each, IPv4 as IPv4-mapped IPv6) and protocol proto; ICMP (IPv4) has none. */
static inline int
transport_ok(int version, const uint8_t *src, const uint8_t *dst, int proto, const uint8_t *m, int64_t len)
{
    uint64_t s = 0;
    if (proto != 1) {
        int at = version == 4 ? 12 : 0;
        s = sum_bytes(src + at, 16 - at, s);
        s = sum_bytes(dst + at, 16 - at, s);
        s += (uint64_t)proto + (uint64_t)(len & 0xFFFF) + (uint64_t)(version == 6 ? (len >> 16) : 0);
    }
    return fold(sum_bytes(m, len, s)) == 0xFFFF;
}

#endif
