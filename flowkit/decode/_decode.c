/* The fast engine's decoder: one sequential pass per packet over a framed chunk.
 *
 * Why C and one pass: decoding column by column with numpy costs dozens of gathers and
 * index subsets per layer; walking each packet once, link layer to TCP options, touches
 * its header bytes while they are in cache and needs no intermediate arrays.
 *
 * decode() fills caller-allocated, zero-filled columns (fast.py allocates them, names and
 * order in COLUMNS) and writes only what a packet's headers provide, so absent values
 * stay 0. Every byte read is guarded by the packet's end (the captured length, capped at
 * the buffer): a packet ending inside a header gets TRUNCATED with the columns read so
 * far. The rules are those of docs/engines.md and docs/packets.md; the dpkt engine is
 * the independent reference the tests compare with. The GIL is released while decoding.
 */
#include "_buffers.h"
#include <stddef.h>

enum { OK, NON_IP, UNSUPPORTED_LINK, TRUNCATED, MALFORMED, FRAGMENT };

/* DLT / LINKTYPE values */
enum {
    LT_NULL = 0, LT_ETHERNET = 1, LT_PPP = 9, LT_RAW_12 = 12, LT_RAW_14 = 14, LT_PPP_HDLC = 50, LT_RAW = 101,
    LT_C_HDLC = 104, LT_IEEE802_11 = 105, LT_LOOP = 108, LT_SLL = 113, LT_RADIOTAP = 127, LT_IPV4 = 228,
    LT_IPV6 = 229, LT_NFLOG = 239, LT_SLL2 = 276,
};

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define MAX_VLAN_TAGS 4
#define MAX_MPLS_LABELS 16
#define PPPOE_SESSION 0x8864
#define VNTAG 0x8926  /* 4-byte tag, then the next ethertype */
#define PBB 0x88E7    /* 802.1ah: 4-byte I-TAG, then a whole inner Ethernet header */
#define PBB_HDR 18
#define ETH_MAX_LEN 1500  /* a type field up to here is an 802.3 length: LLC follows */
#define MAX_SHIMS 8       /* VLAN tags, VN-Tags, PBB and LLC/SNAP headers peeled before the payload type */
#define ETHERTYPE_MIN 0x0600  /* SLL / Cisco HDLC protocol values below this are no ethertype */
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

/* IEEE 802.11 frame control (byte 0: version, type, subtype; byte 1: flags) */
#define WLAN_TYPE_DATA 2
#define WLAN_NO_DATA 0x40   /* subtype bit: Null / CF-only frames carry no payload */
#define WLAN_QOS 0x80       /* subtype bit: a 2-byte QoS control field follows the addresses */
#define WLAN_DS_BITS 0x03   /* ToDS and FromDS both set: a fourth address */
#define WLAN_PROTECTED 0x40 /* encrypted body: no readable LLC */
#define WLAN_ORDER 0x80     /* on QoS data: a 4-byte HT control field follows QoS control */
#define WLAN_AMSDU 0x80     /* QoS control bit 7: the body is A-MSDU subframes */
#define RADIOTAP_MIN 8

/* NFLOG: family, version, resource id; then little-endian TLVs (length incl. header, type) */
#define NFLOG_HDR 4
#define NFULA_PAYLOAD 9
#define NFLOG_AF_INET 2
#define NFLOG_AF_INET6 10
#define MAX_NFLOG_TLVS 32

/* BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 */
#define AF_INET 2

#define IPV6_FRAGMENT 44
#define IPV6_AH 51
#define MAX_IPV6_EXT 8

#define TCP 6
#define UDP 17
#define ICMP 1
#define ICMPV6 58
#define ICMP_HEADER 8
#define MAX_TCP_OPTIONS 40
#define PREFETCH 16 /* packets */
#define NOP_NOP_TS 0x0101080Au

/* schema.py: frag and tcp_opts bits */
#define FRAG_MF 1
#define FRAG_DF 2
#define FRAG_IS_FRAGMENT 4
#define OPT_MSS 1
#define OPT_WSCALE 2
#define OPT_SACK_PERM 4
#define OPT_TS 8
#define OPT_SACK 16

/* The output columns, in the order of COLUMNS below. */
typedef struct {
    uint16_t *vlan, *inner_vlan;
    uint8_t *status, *ip_version, *src_ip, *dst_ip, *ip_proto;
    uint32_t *ip_len;
    uint8_t *ttl;
    uint32_t *ip_id;
    uint8_t *frag;
    uint16_t *frag_offset, *src_port, *dst_port, *tcp_flags;
    uint32_t *seq, *ack;
    uint16_t *window;
    uint8_t *tcp_hdr_len, *tcp_opts;
    uint16_t *mss;
    uint8_t *wscale;
    uint32_t *tsval, *tsecr;
    uint16_t *udp_len;
    uint8_t *icmp_type, *icmp_code;
    uint32_t *payload_len;
    /* not schema columns: where the captured transport payload is (flows/ reads it for
     * service identification); start is an offset into the chunk buffer */
    int64_t *payload_start;
    uint32_t *payload_caplen;
} cols_t;

static const struct { const char *name, *fmt; int width; size_t offset; } COLUMNS[] = {
#define COL(name, fmt, width) {#name, fmt, width, offsetof(cols_t, name)}
    COL(vlan, "H", 1), COL(inner_vlan, "H", 1), COL(status, "B", 1), COL(ip_version, "B", 1),
    COL(src_ip, "B", 16), COL(dst_ip, "B", 16), COL(ip_proto, "B", 1), COL(ip_len, "I", 1), COL(ttl, "B", 1),
    COL(ip_id, "I", 1), COL(frag, "B", 1), COL(frag_offset, "H", 1), COL(src_port, "H", 1),
    COL(dst_port, "H", 1), COL(tcp_flags, "H", 1), COL(seq, "I", 1), COL(ack, "I", 1), COL(window, "H", 1),
    COL(tcp_hdr_len, "B", 1), COL(tcp_opts, "B", 1), COL(mss, "H", 1), COL(wscale, "B", 1),
    COL(tsval, "I", 1), COL(tsecr, "I", 1), COL(udp_len, "H", 1), COL(icmp_type, "B", 1),
    COL(icmp_code, "B", 1), COL(payload_len, "I", 1),
#undef COL
};
#define N_COLUMNS ((int)(sizeof COLUMNS / sizeof COLUMNS[0]))

static inline uint32_t be16(const uint8_t *b, int64_t p) { return ((uint32_t)b[p] << 8) | b[p + 1]; }
static inline uint32_t le16(const uint8_t *b, int64_t p) { return b[p] | ((uint32_t)b[p + 1] << 8); }

static inline uint32_t
be32(const uint8_t *b, int64_t p)
{
    return ((uint32_t)b[p] << 24) | ((uint32_t)b[p + 1] << 16) | ((uint32_t)b[p + 2] << 8) | b[p + 3];
}

static inline uint32_t bswap32(uint32_t x) { return (x >> 24) | ((x >> 8) & 0xFF00) | ((x << 8) & 0xFF0000) | (x << 24); }

/* One packet on its way down the layers. */
typedef struct {
    const uint8_t *b;  /* the chunk buffer */
    int64_t i;         /* row */
    int64_t pos;       /* current header position */
    int64_t end;       /* end of the captured bytes */
    int64_t wire_end;  /* end of the frame on the wire */
    uint8_t status;
    uint8_t fragment;  /* inside a fragmented IP datagram */
} pkt_t;

#define AVAIL(k) ((k)->end - (k)->pos)
/* Final status: decoding of this packet ends here (link functions return version 0). */
#define FAIL(k, s) do { (k)->status = (s); return 0; } while (0)

/* ---- link layer: each returns the announced IP version (4 / 6) with pos at its header,
 * or 0 with a final status ---- */

/* Dispatch on an ethertype: shim headers (one per round), then PPPoE / MPLS / IP / other. */
static int
ethertype(pkt_t *k, const cols_t *c, uint32_t et)
{
    const uint8_t *b = k->b;
    int depth = 0; /* VLAN tags read so far */
    for (int round = 0; round < MAX_SHIMS; round++) {
        int64_t p = k->pos;
        if (et == 0x8100 || et == 0x88A8 || et == 0x9100) {
            if (depth >= MAX_VLAN_TAGS) /* a fifth tag: not followed */
                FAIL(k, NON_IP);
            if (AVAIL(k) < 4)
                FAIL(k, TRUNCATED);
            uint16_t vid = be16(b, p) & 0x0FFF;
            if (depth == 0)
                c->vlan[k->i] = vid;
            else if (depth == 1)
                c->inner_vlan[k->i] = vid;
            et = be16(b, p + 2);
            k->pos = p + 4;
            depth++;
        } else if (et == VNTAG || et == PBB) {
            /* VN-Tag: 4-byte tag, next ethertype at +4; PBB: I-TAG + inner MACs, type at +16 */
            int size = et == VNTAG ? 6 : PBB_HDR;
            if (AVAIL(k) < size)
                FAIL(k, TRUNCATED);
            et = be16(b, p + size - 2);
            k->pos = p + size;
        } else if (et <= ETH_MAX_LEN) {
            /* 802.2 LLC: only SNAP with OUI 0 (an encapsulated ethertype) can carry IP */
            if (AVAIL(k) < 3)
                FAIL(k, TRUNCATED);
            if (b[p] != 0xAA || b[p + 1] != 0xAA || b[p + 2] != 0x03)
                FAIL(k, NON_IP);
            if (AVAIL(k) < 8)
                FAIL(k, TRUNCATED);
            if (b[p + 3] | b[p + 4] | b[p + 5])
                FAIL(k, NON_IP);
            et = be16(b, p + 6);
            k->pos = p + 8;
        } else {
            break;
        }
    }
    int kind = 0;
    if (et == ETH_IPV4) {
        kind = 4;
    } else if (et == ETH_IPV6) {
        kind = 6;
    } else if (et == PPPOE_SESSION) {
        /* 6-byte PPPoE session header, then the 2-byte PPP protocol */
        if (AVAIL(k) < 8)
            FAIL(k, TRUNCATED);
        uint32_t proto = be16(b, k->pos + 6);
        kind = proto == PPP_IPV4 ? 4 : proto == PPP_IPV6 ? 6 : 0;
        k->pos += 8;
    } else if (et == 0x8847 || et == 0x8848) {
        for (int label = 0; label < MAX_MPLS_LABELS; label++) {
            if (AVAIL(k) < 4)
                FAIL(k, TRUNCATED);
            int bottom = b[k->pos + 2] & 1;
            k->pos += 4;
            if (bottom) {
                /* below the label stack there is no type field: the IP version nibble decides */
                if (AVAIL(k) < 1)
                    FAIL(k, TRUNCATED);
                int v = b[k->pos] >> 4;
                kind = v == 4 || v == 6 ? v : 0;
                break;
            }
        }
    }
    if (!kind) /* deeper label stacks and everything else that is not IP */
        FAIL(k, NON_IP);
    return kind;
}

static int
ethernet(pkt_t *k, const cols_t *c)
{
    if (AVAIL(k) < 14)
        FAIL(k, TRUNCATED);
    uint32_t et = be16(k->b, k->pos + 12);
    k->pos += 14;
    return ethertype(k, c, et);
}

/* SLL: 16-byte header, protocol at 14. SLL2: 20 bytes, protocol at 0. Cisco HDLC:
 * address, control, then the protocol at 2. */
static int
proto_header(pkt_t *k, const cols_t *c, int hdr, int proto_at)
{
    if (AVAIL(k) < hdr)
        FAIL(k, TRUNCATED);
    uint32_t et = be16(k->b, k->pos + proto_at);
    k->pos += hdr;
    /* small values here are Linux packet types (802.2, Novell, ...), not 802.3 lengths */
    if (et < ETHERTYPE_MIN)
        FAIL(k, NON_IP);
    return ethertype(k, c, et);
}

static inline int
family_kind(uint32_t f)
{
    return f == AF_INET ? 4 : (f == 24 || f == 28 || f == 30) ? 6 : 0;
}

/* 4-byte address family: host byte order of the capturing machine for DLT_NULL (either
 * order here), network order for DLT_LOOP. */
static int
null_loop(pkt_t *k, int lt)
{
    if (AVAIL(k) < 4)
        FAIL(k, TRUNCATED);
    uint32_t fam = be32(k->b, k->pos);
    int kind = family_kind(fam);
    if (lt == LT_NULL && !kind)
        kind = family_kind(bswap32(fam));
    k->pos += 4;
    if (!kind)
        FAIL(k, NON_IP);
    return kind;
}

static int
raw(pkt_t *k, int lt)
{
    if (lt == LT_IPV4)
        return 4;
    if (lt == LT_IPV6)
        return 6;
    if (AVAIL(k) < 1)
        FAIL(k, TRUNCATED);
    int v = k->b[k->pos] >> 4;
    if (v != 4 && v != 6)
        FAIL(k, MALFORMED);
    return v;
}

/* Optional 0xff 0x03 address/control, then a 2-byte protocol, or 1 byte when
 * protocol-field compression is on (an odd first byte). */
static int
ppp(pkt_t *k)
{
    const uint8_t *b = k->b;
    if (AVAIL(k) < 1)
        FAIL(k, TRUNCATED);
    if (b[k->pos] == 0xFF) { /* always the HDLC address byte (0xff is no PPP protocol) */
        if (AVAIL(k) < 2)
            FAIL(k, TRUNCATED);
        k->pos += 2;
    }
    if (AVAIL(k) < 1)
        FAIL(k, TRUNCATED);
    uint32_t proto = b[k->pos];
    if (proto & 1) {
        k->pos += 1;
    } else {
        if (AVAIL(k) < 2)
            FAIL(k, TRUNCATED);
        proto = be16(b, k->pos);
        k->pos += 2;
    }
    if (proto == PPP_IPV4)
        return 4;
    if (proto == PPP_IPV6)
        return 6;
    FAIL(k, NON_IP);
}

static int
wlan(pkt_t *k, const cols_t *c, int lt)
{
    const uint8_t *b = k->b;
    if (lt == LT_RADIOTAP) {
        /* skip the radiotap header by its little-endian length; an FCS at the end of the
         * frame is left in place, as Zeek does (the IP length bounds the payload) */
        if (AVAIL(k) < 4)
            FAIL(k, TRUNCATED);
        int64_t it_len = le16(b, k->pos + 2);
        if (it_len < RADIOTAP_MIN)
            FAIL(k, MALFORMED);
        if (AVAIL(k) < it_len)
            FAIL(k, TRUNCATED);
        k->pos += it_len;
    }
    if (AVAIL(k) < 2)
        FAIL(k, TRUNCATED);
    uint8_t fc0 = b[k->pos], fc1 = b[k->pos + 1];
    /* management/control frames, data subtypes without payload, encrypted bodies */
    if (((fc0 >> 2) & 3) != WLAN_TYPE_DATA || (fc0 & WLAN_NO_DATA) || (fc1 & WLAN_PROTECTED))
        FAIL(k, NON_IP);
    int qos = (fc0 & WLAN_QOS) != 0;
    int qos_at = (fc1 & WLAN_DS_BITS) == WLAN_DS_BITS ? 30 : 24;
    int hdr = qos_at + (qos ? 2 : 0) + (qos && (fc1 & WLAN_ORDER) ? 4 : 0);
    if (AVAIL(k) < hdr)
        FAIL(k, TRUNCATED);
    if (qos && (b[k->pos + qos_at] & WLAN_AMSDU))
        FAIL(k, NON_IP);
    k->pos += hdr;
    /* the body starts with an LLC header: an "802.3 length" type sends it there */
    return ethertype(k, c, 0);
}

static int
nflog(pkt_t *k)
{
    const uint8_t *b = k->b;
    if (AVAIL(k) < NFLOG_HDR)
        FAIL(k, TRUNCATED);
    uint8_t family = b[k->pos], version = b[k->pos + 1];
    if (version != 0)
        FAIL(k, MALFORMED);
    int want = family == NFLOG_AF_INET ? 4 : family == NFLOG_AF_INET6 ? 6 : 0;
    if (!want)
        FAIL(k, NON_IP);
    k->pos += NFLOG_HDR;
    for (int t = 0; t < MAX_NFLOG_TLVS; t++) {
        /* the captured bytes ending before the payload TLV: cut (or no payload logged) */
        if (AVAIL(k) < 4)
            FAIL(k, TRUNCATED);
        int64_t tlen = le16(b, k->pos), ttype = le16(b, k->pos + 2);
        if (tlen < 4) /* a TLV shorter than its own header */
            FAIL(k, MALFORMED);
        if (ttype == NFULA_PAYLOAD) {
            k->pos += 4; /* the IP packet; a cut inside it is the IP layer's business */
            return want;
        }
        int64_t padded = (tlen + 3) & ~(int64_t)3;
        if (AVAIL(k) < padded)
            FAIL(k, TRUNCATED);
        k->pos += padded;
    }
    FAIL(k, NON_IP);
}

static int
link_layer(pkt_t *k, const cols_t *c, int lt)
{
    switch (lt) {
    case LT_ETHERNET: return ethernet(k, c);
    case LT_SLL: return proto_header(k, c, 16, 14);
    case LT_SLL2: return proto_header(k, c, 20, 0);
    case LT_C_HDLC: return proto_header(k, c, 4, 2);
    case LT_NULL: case LT_LOOP: return null_loop(k, lt);
    case LT_RAW_12: case LT_RAW_14: case LT_RAW: case LT_IPV4: case LT_IPV6: return raw(k, lt);
    case LT_PPP: case LT_PPP_HDLC: return ppp(k);
    case LT_IEEE802_11: case LT_RADIOTAP: return wlan(k, c, lt);
    case LT_NFLOG: return nflog(k);
    default: FAIL(k, UNSUPPORTED_LINK);
    }
}

/* ---- transport ---- */

static void
tcp_options(const uint8_t *b, const cols_t *c, int64_t i, int64_t cur, int64_t stop)
{
    uint8_t bits = 0;
    /* most segments of an established connection carry exactly NOP NOP TS (12 bytes) */
    if (stop - cur == 12 && be32(b, cur) == NOP_NOP_TS) {
        c->tsval[i] = be32(b, cur + 4);
        c->tsecr[i] = be32(b, cur + 8);
        c->tcp_opts[i] = OPT_TS;
        return;
    }
    /* a malformed option (length < 2 or past the header) ends the walk without changing
     * the status: the header itself is complete */
    for (int n = 0; n < MAX_TCP_OPTIONS && cur < stop; n++) {
        uint8_t kind = b[cur];
        if (kind == 1) { /* NOP */
            cur++;
            continue;
        }
        if (kind == 0 || cur + 1 >= stop)
            break;
        int64_t size = b[cur + 1];
        if (size < 2 || cur + size > stop)
            break;
        if (kind == 2 && size == 4) {
            c->mss[i] = be16(b, cur + 2);
            bits |= OPT_MSS;
        } else if (kind == 3 && size == 3) {
            c->wscale[i] = b[cur + 2];
            bits |= OPT_WSCALE;
        } else if (kind == 4 && size == 2) {
            bits |= OPT_SACK_PERM;
        } else if (kind == 5) {
            bits |= OPT_SACK;
        } else if (kind == 8 && size == 10) {
            c->tsval[i] = be32(b, cur + 2);
            c->tsecr[i] = be32(b, cur + 6);
            bits |= OPT_TS;
        }
        cur += size;
    }
    c->tcp_opts[i] = bits;
}

/* Whether the transport header of `need` bytes is complete; else a final status: MALFORMED
 * when the IP length cannot hold it, TRUNCATED when the capture ends inside it. */
static inline int
complete(pkt_t *k, int64_t l4len, int64_t need)
{
    if (l4len < need) {
        k->status = MALFORMED;
        return 0;
    }
    if (AVAIL(k) < need) {
        k->status = TRUNCATED;
        return 0;
    }
    return 1;
}

/* The captured part of a TCP/UDP payload of `len` bytes on the wire at `start` (never the
 * link layer's padding); nothing for fragments, whose payload is incomplete. */
static inline void
captured(const pkt_t *k, const cols_t *c, int64_t start, int64_t len)
{
    if (!c->payload_start || k->fragment)
        return;
    int64_t have = k->end - start;
    c->payload_start[k->i] = start;
    c->payload_caplen[k->i] = (uint32_t)(have < len ? (have > 0 ? have : 0) : len);
}

/* payload_len always derives from the IP length, never from the captured length, so
 * snaplen-limited captures still count the bytes that were on the wire. */
static void
transport(pkt_t *k, const cols_t *c, int proto, int64_t l4len)
{
    const uint8_t *b = k->b;
    int64_t i = k->i, p = k->pos;
    if (proto == TCP || proto == UDP) {
        if (AVAIL(k) >= 4) {
            c->src_port[i] = be16(b, p);
            c->dst_port[i] = be16(b, p + 2);
        }
    }
    if (proto == TCP) {
        if (!complete(k, l4len, 20))
            return;
        uint32_t word = be32(b, p + 12); /* data offset, NS, flags, window */
        int64_t hlen = (int64_t)(word >> 28) * 4;
        c->seq[i] = be32(b, p + 4);
        c->ack[i] = be32(b, p + 8);
        c->tcp_flags[i] = (word >> 16) & 0x1FF; /* byte 13 plus the NS bit from byte 12 */
        c->window[i] = word & 0xFFFF;
        c->tcp_hdr_len[i] = (uint8_t)hlen;
        if (hlen < 20 || hlen > l4len) {
            k->status = MALFORMED;
            return;
        }
        if (AVAIL(k) < hlen) {
            k->status = TRUNCATED;
            return;
        }
        c->payload_len[i] = (uint32_t)(l4len - hlen);
        captured(k, c, p + hlen, l4len - hlen);
        if (hlen > 20)
            tcp_options(b, c, i, p + 20, p + hlen);
    } else if (proto == UDP) {
        if (!complete(k, l4len, 8))
            return;
        c->udp_len[i] = be16(b, p + 4);
        c->payload_len[i] = (uint32_t)(l4len - 8);
        captured(k, c, p + 8, l4len - 8);
    } else if (proto == ICMP || proto == ICMPV6) {
        if (AVAIL(k) >= 2) {
            c->icmp_type[i] = b[p];
            c->icmp_code[i] = b[p + 1];
        }
        /* Zeek's ICMP_MINLEN: type, code, checksum, 4 bytes rest-of-header */
        if (!complete(k, l4len, ICMP_HEADER))
            return;
        c->payload_len[i] = (uint32_t)(l4len - ICMP_HEADER);
    } else {
        c->payload_len[i] = (uint32_t)l4len;
    }
}

/* ---- IP ---- */

/* A packet ending inside the fixed IP header: TRUNCATED, unless the first byte already
 * shows the wrong IP version (then the header is impossible: MALFORMED). */
static inline void
fail_short(pkt_t *k, int version)
{
    k->status = AVAIL(k) >= 1 && (k->b[k->pos] >> 4) != version ? MALFORMED : TRUNCATED;
}

static void
ipv4(pkt_t *k, const cols_t *c)
{
    const uint8_t *b = k->b;
    int64_t i = k->i, p = k->pos, avail = AVAIL(k);
    c->ip_version[i] = 4;
    if (avail < 20) {
        fail_short(k, 4);
        return;
    }
    uint8_t b0 = b[p];
    int64_t ihl = (int64_t)(b0 & 0x0F) * 4;
    int64_t total = be16(b, p + 2);
    /* TCP segmentation offload leaves total length 0 in captures taken on the sender:
     * use the captured bytes instead, as Zeek does (weird "ip_hdr_len_zero") */
    if (total == 0)
        total = avail;
    uint32_t flags_off = be16(b, p + 6);
    uint8_t proto = b[p + 9];
    c->ip_len[i] = (uint32_t)total;
    c->ip_id[i] = be16(b, p + 4);
    c->ttl[i] = b[p + 8];
    c->ip_proto[i] = proto;
    /* IPv4-mapped IPv6: ::ffff:a.b.c.d (the other bytes are already zero) */
    uint8_t *src = c->src_ip + 16 * i, *dst = c->dst_ip + 16 * i;
    src[10] = src[11] = dst[10] = dst[11] = 0xFF;
    memcpy(src + 12, b + p + 12, 4);
    memcpy(dst + 12, b + p + 16, 4);
    uint32_t frag_offset = flags_off & 0x1FFF;
    /* MF (bit 13) and DF (bit 14) shift straight onto FRAG_MF = 1 and FRAG_DF = 2 */
    c->frag[i] = ((flags_off >> 13) & (FRAG_MF | FRAG_DF)) | ((flags_off & 0x3FFF) ? FRAG_IS_FRAGMENT : 0);
    k->fragment = (flags_off & 0x3FFF) != 0;
    c->frag_offset[i] = (uint16_t)frag_offset;
    /* a total length beyond the frame's length on the wire is impossible (not a snaplen cut) */
    if ((b0 >> 4) != 4 || ihl < 20 || total < ihl || p + total > k->wire_end) {
        k->status = MALFORMED;
        return;
    }
    if (avail < ihl) {
        k->status = TRUNCATED;
        return;
    }
    int64_t l4len = total - ihl;
    if (frag_offset > 0) {
        k->status = FRAGMENT;
        c->payload_len[i] = (uint32_t)l4len;
        return;
    }
    k->pos = p + ihl;
    transport(k, c, proto, l4len);
}

static inline int
ipv6_ext(int nh)
{
    return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60; /* hop-by-hop, routing, fragment, AH, dest options */
}

static void
ipv6(pkt_t *k, const cols_t *c)
{
    const uint8_t *b = k->b;
    int64_t i = k->i, p = k->pos;
    c->ip_version[i] = 6;
    if (AVAIL(k) < 40) {
        fail_short(k, 6);
        return;
    }
    int64_t plen = be16(b, p + 4);
    int nh = b[p + 6];
    c->ip_len[i] = (uint32_t)(plen + 40);
    c->ttl[i] = b[p + 7];
    memcpy(c->src_ip + 16 * i, b + p + 8, 16);
    memcpy(c->dst_ip + 16 * i, b + p + 24, 16);
    c->ip_proto[i] = (uint8_t)nh;
    if ((b[p] >> 4) != 6 || p + 40 + plen > k->wire_end) {
        k->status = MALFORMED;
        return;
    }
    /* extension-header chain; ip_proto keeps the first next header if the chain fails */
    int64_t cur = p + 40, used = 0; /* extension bytes consumed */
    for (int depth = 0; ipv6_ext(nh); depth++) {
        if (depth == MAX_IPV6_EXT) { /* a chain deeper than flowkit follows */
            k->status = MALFORMED;
            return;
        }
        int is_frag = nh == IPV6_FRAGMENT;
        if (k->end - cur < (is_frag ? 8 : 2)) {
            k->status = TRUNCATED;
            return;
        }
        int64_t b1 = b[cur + 1];
        int64_t hlen = is_frag ? 8 : nh == IPV6_AH ? (b1 + 2) * 4 : (b1 + 1) * 8;
        if (used + hlen > plen) {
            k->status = MALFORMED;
            return;
        }
        if (k->end - cur < hlen) {
            k->status = TRUNCATED;
            return;
        }
        int64_t c0 = cur;
        nh = b[c0];
        cur = c0 + hlen;
        used += hlen;
        if (is_frag) {
            uint32_t word = be16(b, c0 + 2), offset = word >> 3;
            int more = word & 1;
            c->ip_id[i] = be32(b, c0 + 4);
            c->frag_offset[i] = (uint16_t)offset;
            c->frag[i] = (more ? FRAG_MF : 0) | (more || offset > 0 ? FRAG_IS_FRAGMENT : 0);
            k->fragment = more || offset > 0;
            if (offset > 0) {
                k->status = FRAGMENT;
                c->ip_proto[i] = (uint8_t)nh;
                c->payload_len[i] = (uint32_t)(plen - used);
                return;
            }
        }
    }
    c->ip_proto[i] = (uint8_t)nh;
    k->pos = cur;
    transport(k, c, nh, plen - used);
}

static PyObject *
decode(PyObject *self, PyObject *args)
{
    PyObject *obuf, *ostart, *ocaplen, *owirelen, *olink, *ocols, *opstart = NULL, *opcap = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOO!|OO", &obuf, &ostart, &ocaplen, &owirelen, &olink, &PyTuple_Type, &ocols,
                          &opstart, &opcap))
        return NULL;
    if (PyTuple_GET_SIZE(ocols) != N_COLUMNS)
        return PyErr_Format(PyExc_ValueError, "expected %d columns, got %zd", N_COLUMNS, PyTuple_GET_SIZE(ocols));
    views_t vin = {.n = 0}, vout = {.n = 0};
    Py_ssize_t size, n, c1, c2, c3;
    const uint8_t *buf = view_of(&vin, obuf, "B", 0, "data", &size);
    const int64_t *start = buf ? view_of(&vin, ostart, "l", 0, "start", &n) : NULL;
    const uint32_t *caplen = start ? view_of(&vin, ocaplen, "I", 0, "caplen", &c1) : NULL;
    const uint32_t *wirelen = caplen ? view_of(&vin, owirelen, "I", 0, "wirelen", &c2) : NULL;
    const uint16_t *linktype = wirelen ? view_of(&vin, olink, "H", 0, "linktype", &c3) : NULL;
    int ok = linktype != NULL;
    if (ok && (c1 != n || c2 != n || c3 != n)) {
        PyErr_SetString(PyExc_ValueError, "start, caplen, wirelen and linktype differ in length");
        ok = 0;
    }
    cols_t cols = {0};
    if (ok && opstart && opcap) {
        Py_ssize_t n1, n2;
        cols.payload_start = view_of(&vout, opstart, "l", 1, "payload_start", &n1);
        cols.payload_caplen = cols.payload_start ? view_of(&vout, opcap, "I", 1, "payload_caplen", &n2) : NULL;
        if (!cols.payload_caplen)
            ok = 0;
        else if (n1 != n || n2 != n) {
            PyErr_SetString(PyExc_ValueError, "payload_start and payload_caplen must have one item per packet");
            ok = 0;
        }
    }
    for (int j = 0; ok && j < N_COLUMNS; j++) {
        Py_ssize_t count;
        void *ptr = view_of(&vout, PyTuple_GET_ITEM(ocols, j), COLUMNS[j].fmt, 1, COLUMNS[j].name, &count);
        if (!ptr) {
            ok = 0;
        } else if (count != n * COLUMNS[j].width) {
            PyErr_Format(PyExc_ValueError, "%s: expected %zd items, got %zd", COLUMNS[j].name,
                         n * COLUMNS[j].width, count);
            ok = 0;
        } else {
            memcpy((char *)&cols + COLUMNS[j].offset, &ptr, sizeof ptr);
        }
    }
    if (!ok) {
        views_release(&vout);
        views_release(&vin);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        /* headers of packets a few records ahead: the buffer is far larger than the caches */
        if (i + PREFETCH < n && start[i + PREFETCH] >= 0 && start[i + PREFETCH] + 64 < size) {
            __builtin_prefetch(buf + start[i + PREFETCH]);
            __builtin_prefetch(buf + start[i + PREFETCH] + 64);
        }
        int64_t s = start[i], cl = caplen[i], wl = wirelen[i];
        /* a record claiming bytes beyond the buffer must not make reads run past it */
        int64_t end = s + cl < size ? s + cl : size;
        if (end < s || s < 0)
            end = s;
        pkt_t k = {.b = buf, .i = i, .pos = s, .end = end, .wire_end = s + (wl > cl ? wl : cl), .status = OK};
        int version = link_layer(&k, &cols, linktype[i]);
        if (version == 4)
            ipv4(&k, &cols);
        else if (version == 6)
            ipv6(&k, &cols);
        cols.status[i] = k.status;
    }
    Py_END_ALLOW_THREADS
    views_release(&vout);
    views_release(&vin);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(data, start, caplen, wirelen, linktype, columns[, payload_start, payload_caplen]): fill the zeroed "
     "columns (a tuple in COLUMNS order) for every packet; with the two optional zeroed arrays, also where each "
     "TCP/UDP packet's captured payload is in data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decode", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__decode(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    PyObject *names = PyTuple_New(N_COLUMNS);
    for (int j = 0; names && j < N_COLUMNS; j++) {
        PyObject *s = PyUnicode_FromString(COLUMNS[j].name);
        if (!s) {
            Py_CLEAR(names);
            break;
        }
        PyTuple_SET_ITEM(names, j, s);
    }
    static const int supported[] = {LT_ETHERNET, LT_NULL, LT_PPP, LT_RAW_12, LT_RAW_14, LT_PPP_HDLC, LT_RAW,
                                    LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2, LT_C_HDLC, LT_IEEE802_11,
                                    LT_RADIOTAP, LT_NFLOG};
    int n_sup = (int)(sizeof supported / sizeof supported[0]);
    PyObject *sup = PyTuple_New(n_sup);
    for (int j = 0; sup && j < n_sup; j++) {
        PyObject *v = PyLong_FromLong(supported[j]);
        if (!v) {
            Py_CLEAR(sup);
            break;
        }
        PyTuple_SET_ITEM(sup, j, v);
    }
    int bad = !names || !sup || PyModule_AddObjectRef(m, "COLUMNS", names) < 0 ||
              PyModule_AddObjectRef(m, "SUPPORTED_LINKTYPES", sup) < 0;
    Py_XDECREF(names);
    Py_XDECREF(sup);
    if (bad) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
