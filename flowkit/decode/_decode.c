/* The fast engine's decoder: one sequential pass per packet over a framed chunk.
 *
 * Why C and one pass: decoding column by column with numpy costs dozens of gathers and
 * index subsets per layer; walking each packet once, link layer to TCP options, touches
 * its header bytes while they are in cache and needs no intermediate arrays.
 *
 * decode() fills caller-allocated columns (fast.py allocates them, names and order in
 * COLUMNS): it zeroes each row it starts (zero_row), then writes only what a packet's
 * headers provide, so absent values are 0. Every byte read is guarded by the packet's end (the captured length, capped at
 * the buffer): a packet ending inside a header gets TRUNCATED with the columns read so
 * far. The rules are those of docs/engines.md and docs/packets.md; the dpkt engine is
 * the independent reference the tests compare with. The GIL is released while decoding.
 */
#include "_buffers.h"
#include "_checksum.h"
#include <stddef.h>

enum { OK, NON_IP, UNSUPPORTED_LINK, TRUNCATED, MALFORMED, FRAGMENT, BAD_CHECKSUM };

/* schema.py Tunnel: the encapsulation that carried a row (Zeek's Tunnel::Type names), and
 * ICMP_QUOTE: the header an ICMP error quotes */
enum { TUN_NONE, TUN_IP, TUN_GRE, TUN_VXLAN, TUN_GENEVE, TUN_GTPV1, TUN_TEREDO, TUN_AYIYA, TUN_ICMP_QUOTE };
#define MAX_TUNNEL_DEPTH 4 /* Zeek's Tunnel::max_depth */
#define ROWS_PER_RECORD (1 + MAX_TUNNEL_DEPTH)

/* DLT / LINKTYPE values */
enum {
    LT_NULL = 0, LT_ETHERNET = 1, LT_PPP = 9, LT_FDDI = 10, LT_RAW_12 = 12, LT_RAW_14 = 14, LT_PPP_HDLC = 50, LT_RAW = 101,
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
#define FABRICPATH 0x8903 /* Cisco FabricPath: 2-byte tag, then a whole inner Ethernet header */
#define FABRICPATH_HDR 16
#define FDDI_HDR 13       /* frame control, two MAC addresses; LLC/SNAP follows */
#define ETH_MAX_LEN 1500  /* a type field up to here is an 802.3 length: LLC follows */
#define MAX_SHIMS 8       /* VLAN tags, VN-Tags, PBB and LLC/SNAP headers peeled before the payload type */
#define ETHERTYPE_MIN 0x0600  /* SLL / Cisco HDLC protocol values below this are no ethertype */
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057
#define PPP_MPLS 0x0281
#define PPP_MPLS_MCAST 0x0283
#define CHDLC_UNICAST 0x0F /* Cisco HDLC address bytes: a PPP-linktype capture may carry them */
#define CHDLC_MULTICAST 0x8F

/* IEEE 802.11 frame control (byte 0: version, type, subtype; byte 1: flags) */
#define WLAN_TYPE_DATA 2
#define WLAN_NO_DATA 0x40   /* subtype bit: Null / CF-only frames carry no payload */
#define WLAN_QOS 0x80       /* subtype bit: a 2-byte QoS control field follows the addresses */
#define WLAN_DS_BITS 0x03   /* ToDS and FromDS both set: a fourth address */
#define WLAN_PROTECTED 0x40 /* encrypted body: no readable LLC */
#define WLAN_ORDER 0x80     /* on QoS data: a 4-byte HT control field follows QoS control */
#define WLAN_AMSDU 0x80     /* QoS control bit 7: the body is A-MSDU subframes */
#define AMSDU_SUBFRAME 14   /* DA, SA, length: then the first MSDU (LLC/SNAP) */
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
    uint8_t *tunnel_depth, *tunnel_type, *tunnel_src_ip, *tunnel_dst_ip;
    uint16_t *tunnel_src_port, *tunnel_dst_port;
    uint8_t *tunnel_proto;
    /* not schema columns: where the captured transport payload is (flows/ reads it for
     * service identification); start is an offset into the
     * record buffer `record` (a reassembled datagram's bytes are elsewhere: none recorded) */
    int64_t *payload_start;
    uint32_t *payload_caplen;
    const uint8_t *record;
    /* with verify_checksums: 1 where the TCP/UDP/ICMP checksum is wrong (else NULL) */
    uint8_t *bad_checksum;
} cols_t;

static const struct { const char *name, *fmt; int width; size_t offset; } COLUMNS[] = {
#define COL(name, fmt, width) {#name, fmt, width, offsetof(cols_t, name)}
    COL(vlan, "H", 1), COL(inner_vlan, "H", 1), COL(status, "B", 1), COL(ip_version, "B", 1),
    COL(src_ip, "B", 16), COL(dst_ip, "B", 16), COL(ip_proto, "B", 1), COL(ip_len, "I", 1), COL(ttl, "B", 1),
    COL(ip_id, "I", 1), COL(frag, "B", 1), COL(frag_offset, "H", 1), COL(src_port, "H", 1),
    COL(dst_port, "H", 1), COL(tcp_flags, "H", 1), COL(seq, "I", 1), COL(ack, "I", 1), COL(window, "H", 1),
    COL(tcp_hdr_len, "B", 1), COL(tcp_opts, "B", 1), COL(mss, "H", 1), COL(wscale, "B", 1),
    COL(tsval, "I", 1), COL(tsecr, "I", 1), COL(udp_len, "H", 1), COL(icmp_type, "B", 1),
    COL(icmp_code, "B", 1), COL(payload_len, "I", 1), COL(tunnel_depth, "B", 1), COL(tunnel_type, "B", 1),
    COL(tunnel_src_ip, "B", 16), COL(tunnel_dst_ip, "B", 16), COL(tunnel_src_port, "H", 1),
    COL(tunnel_dst_port, "H", 1), COL(tunnel_proto, "B", 1),
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
    uint8_t whole;     /* a datagram reassembled here: its IPv4 header was rewritten (checked per fragment) */
    uint8_t verify;    /* verify_checksums */
    int depth;         /* tunnels around this packet */
    /* set by the IP layer for the tunnel step: the transport payload (TCP/UDP) or the IP
     * payload (other protocols), bounded by the IP length and by the captured bytes */
    int64_t data, data_end, data_wire_end;
} pkt_t;

#define AVAIL(k) ((k)->end - (k)->pos)
/* Final status: decoding of this packet ends here (link functions return version 0). */
#define FAIL(k, s) do { (k)->status = (s); return 0; } while (0)

/* ---- link layer: each returns the announced IP version (4 / 6) with pos at its header,
 * or 0 with a final status ---- */

/* An MPLS label stack at pos: the IP version under the bottom label (the version nibble
 * decides: MPLS has no payload type), 0 when not IP (status left OK) or cut (TRUNCATED). */
static int
mpls(pkt_t *k)
{
    for (int label = 0; label < MAX_MPLS_LABELS; label++) {
        if (AVAIL(k) < 4)
            FAIL(k, TRUNCATED);
        int bottom = k->b[k->pos + 2] & 1;
        k->pos += 4;
        if (bottom) {
            if (AVAIL(k) < 1)
                FAIL(k, TRUNCATED);
            int v = k->b[k->pos] >> 4;
            return v == 4 || v == 6 ? v : 0;
        }
    }
    return 0; /* a deeper stack than flowkit follows */
}

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
        } else if (et == VNTAG || et == PBB || et == FABRICPATH) {
            /* VN-Tag: 4-byte tag, next ethertype at +4; PBB: I-TAG + inner MACs, type at +16;
             * FabricPath: 2-byte tag + inner MACs, type at +14 */
            int size = et == VNTAG ? 6 : et == PBB ? PBB_HDR : FABRICPATH_HDR;
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
        kind = mpls(k);
        if (!kind && k->status != OK)
            return 0;
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
 * protocol-field compression is on (an odd first byte). A first byte 0x0f / 0x8f is a
 * Cisco HDLC address instead (routers write such frames under the PPP link types). */
static int
ppp(pkt_t *k, const cols_t *c)
{
    const uint8_t *b = k->b;
    if (AVAIL(k) < 1)
        FAIL(k, TRUNCATED);
    if (b[k->pos] == CHDLC_UNICAST || b[k->pos] == CHDLC_MULTICAST)
        return proto_header(k, c, 4, 2);
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
    if (proto == PPP_MPLS || proto == PPP_MPLS_MCAST) {
        int v = mpls(k);
        if (v || k->status != OK)
            return v;
    }
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
        hdr += AMSDU_SUBFRAME; /* the first subframe's MSDU: one frame, one row */
    if (AVAIL(k) < hdr)
        FAIL(k, TRUNCATED);
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
    case LT_PPP: case LT_PPP_HDLC: return ppp(k, c);
    case LT_FDDI:
        if (AVAIL(k) < FDDI_HDR)
            FAIL(k, TRUNCATED);
        k->pos += FDDI_HDR;
        return ethertype(k, c, 0); /* an "802.3 length": LLC/SNAP follows */
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
 * link layer's padding), in the row of k: an inner (tunnelled) row's payload lies inside the
 * record too. Nothing for fragments, whose payload is incomplete, nor for a reassembled
 * datagram (and what it carries), whose bytes are not contiguous in the record buffer. */
static inline void
captured(const pkt_t *k, const cols_t *c, int64_t start, int64_t len)
{
    if (!c->payload_start || k->fragment || k->b != c->record)
        return;
    int64_t have = k->end - start;
    c->payload_start[k->i] = start;
    c->payload_caplen[k->i] = (uint32_t)(have < len ? (have > 0 ? have : 0) : len);
}

#define PORT_VXLAN_ZEEK 4789 /* Zeek's VXLAN::vxlan_ports: a zero UDP checksum there is accepted */

/* verify_checksums: is the TCP/UDP/ICMP checksum of the l4len-byte message at p wrong? As Zeek
 * checks it: only when the whole message was captured (not a fragment's part); IPv4 UDP with
 * checksum 0 has none; IPv6 UDP always has one, except VXLAN's zero checksum; UDP only when
 * the whole frame was captured (Zeek: pkt->len <= cap_len). */
static void
verify_transport(const pkt_t *k, const cols_t *c, int proto, int64_t p, int64_t l4len)
{
    int64_t i = k->i;
    if (!k->verify || !c->bad_checksum || k->fragment || k->end < p + l4len)
        return;
    int version = c->ip_version[i];
    if (proto == UDP) {
        uint32_t sum = be16(k->b, p + 6);
        if (k->end < k->wire_end || (version == 4 && sum == 0))
            return;
        if (sum == 0 && l4len > 8 + 8 + 14 && (k->b[p + 8] & 0x08) && be16(k->b, p + 2) == PORT_VXLAN_ZEEK)
            return;
    }
    if (!transport_ok(version, c->src_ip + 16 * i, c->dst_ip + 16 * i, proto, k->b + p, l4len))
        c->bad_checksum[i] = 1;
}

/* payload_len always derives from the IP length, never from the captured length, so
 * snaplen-limited captures still count the bytes that were on the wire. */
static void
transport(pkt_t *k, const cols_t *c, int proto, int64_t l4len)
{
    const uint8_t *b = k->b;
    int64_t i = k->i, p = k->pos;
    k->data = p;
    k->data_wire_end = p + l4len;
    k->data_end = k->end < p + l4len ? k->end : p + l4len;
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
        k->data = p + hlen;
        if (hlen > 20)
            tcp_options(b, c, i, p + 20, p + hlen);
        verify_transport(k, c, proto, p, l4len);
    } else if (proto == UDP) {
        if (!complete(k, l4len, 8))
            return;
        c->udp_len[i] = be16(b, p + 4);
        c->payload_len[i] = (uint32_t)(l4len - 8);
        captured(k, c, p + 8, l4len - 8);
        k->data = p + 8;
        verify_transport(k, c, proto, p, l4len);
    } else if (proto == ICMP || proto == ICMPV6) {
        if (AVAIL(k) >= 2) {
            c->icmp_type[i] = b[p];
            c->icmp_code[i] = b[p + 1];
        }
        /* Zeek's ICMP_MINLEN: type, code, checksum, 4 bytes rest-of-header */
        if (!complete(k, l4len, ICMP_HEADER))
            return;
        c->payload_len[i] = (uint32_t)(l4len - ICMP_HEADER);
        verify_transport(k, c, proto, p, l4len);
    } else {
        c->payload_len[i] = (uint32_t)l4len;
    }
}

/* ---- IP fragment reassembly ----
 *
 * Pending datagrams are keyed by version, addresses, identification and (IPv4) protocol.
 * Overlaps: the bytes that arrived first win (later copies of a byte range are ignored,
 * as Zeek's reassembler keeps its first data), so duplicates change nothing. A datagram
 * is complete when its first fragment (offset 0, holding the headers), its last fragment
 * (no more-fragments bit, giving the length) and every 8-byte unit between have arrived;
 * it is then decoded in the row of the fragment that completed it. Pending datagrams
 * older than the timeout, or the oldest ones past the memory bound, are given up.
 */
#define HDR_ROOM 512        /* headers of the first fragment go right before the data */
#define MAX_DATAGRAM 65535  /* IP payload bytes a reassembled datagram may hold */
#define UNITS ((MAX_DATAGRAM + 7) / 8)
#define FRAG_BUCKETS 4096
#define FRAG_ENTRY_BYTES 2048 /* memory counted per pending datagram besides its buffer */

typedef struct frag_s {
    struct frag_s *next_in_bucket, *older, *newer;
    uint8_t version, proto, src[16], dst[16];
    uint32_t id, hash;
    int depth;             /* tunnels around the fragments */
    int64_t first_ts;
    int32_t total;         /* payload bytes; -1 until the last fragment */
    int32_t hdr_len;       /* -1 until the first fragment */
    int32_t nh_at;         /* IPv6: header byte that named the fragment header */
    uint8_t next_proto;    /* IPv6: the fragment header's next header */
    int64_t held;          /* records at depth 0 whose only row is a fragment of this datagram */
    int64_t cap;           /* bytes allocated at buf (HDR_ROOM + data) */
    uint8_t *buf;
    uint8_t covered[(UNITS + 7) / 8];
} frag_t;

typedef struct {
    int decap, reassemble, verify;
    int64_t timeout_ns, max_bytes, bytes, pending;
    int64_t given_up;      /* depth-0 fragment records of datagrams given up */
    frag_t *buckets[FRAG_BUCKETS];
    frag_t *oldest, *newest;
    frag_t *done[ROWS_PER_RECORD]; /* datagrams completed by the record being decoded */
    int n_done;
} state_t;

static uint32_t
frag_hash(int version, const uint8_t *src, const uint8_t *dst, uint32_t id, int proto)
{
    uint32_t h = 2166136261u ^ (uint32_t)version ^ ((uint32_t)proto << 8);
    for (int j = 0; j < 16; j++)
        h = (h ^ src[j]) * 16777619u;
    for (int j = 0; j < 16; j++)
        h = (h ^ dst[j]) * 16777619u;
    return (h ^ id) * 16777619u;
}

static void
frag_unlink(state_t *st, frag_t *f)
{
    frag_t **pp = &st->buckets[f->hash % FRAG_BUCKETS];
    while (*pp && *pp != f)
        pp = &(*pp)->next_in_bucket;
    if (*pp)
        *pp = f->next_in_bucket;
    if (f->older)
        f->older->newer = f->newer;
    else
        st->oldest = f->newer;
    if (f->newer)
        f->newer->older = f->older;
    else
        st->newest = f->older;
    st->bytes -= f->cap + FRAG_ENTRY_BYTES;
    st->pending--;
}

static void
frag_give_up(state_t *st, frag_t *f)
{
    frag_unlink(st, f);
    st->given_up += f->held;
    free(f->buf);
    free(f);
}

static void
frag_expire(state_t *st, int64_t ts)
{
    while (st->oldest && ts - st->oldest->first_ts > st->timeout_ns)
        frag_give_up(st, st->oldest);
}

static void
frags_clear(state_t *st)
{
    while (st->oldest)
        frag_give_up(st, st->oldest);
}

static int
frag_complete(const frag_t *f)
{
    if (f->total < 0 || f->hdr_len < 0)
        return 0;
    int32_t units = (f->total + 7) / 8;
    for (int32_t u = 0; u < units; u++)
        if (!(f->covered[u >> 3] & (1 << (u & 7))))
            return 0;
    return 1;
}

enum { FRAG_HELD, FRAG_DONE, FRAG_BAD };

/* Add one fragment: `off`/`len` bytes of payload at `data`; `hdr`/`hdr_len` the headers
 * before it (used from the first fragment). FRAG_DONE puts the datagram in st->done. */
static int
frag_add(state_t *st, const pkt_t *k, int version, const uint8_t *src, const uint8_t *dst, uint32_t id,
         int proto, const uint8_t *hdr, int64_t hdr_len, int nh_at, int next_proto, int64_t off,
         const uint8_t *data, int64_t len, int more, int64_t ts)
{
    if (!st->reassemble)
        return FRAG_HELD; /* each fragment stays a row of its own */
    if (off + len > MAX_DATAGRAM || hdr_len > HDR_ROOM || st->n_done >= ROWS_PER_RECORD)
        return FRAG_BAD;
    uint32_t h = frag_hash(version, src, dst, id, proto);
    frag_t *f = st->buckets[h % FRAG_BUCKETS];
    while (f && !(f->hash == h && f->version == version && f->id == id && f->proto == proto &&
                  f->depth == k->depth && !memcmp(f->src, src, 16) && !memcmp(f->dst, dst, 16)))
        f = f->next_in_bucket;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            return FRAG_BAD;
        f->version = (uint8_t)version;
        f->proto = (uint8_t)proto;
        memcpy(f->src, src, 16);
        memcpy(f->dst, dst, 16);
        f->id = id;
        f->hash = h;
        f->depth = k->depth;
        f->first_ts = ts;
        f->total = f->hdr_len = -1;
        f->next_in_bucket = st->buckets[h % FRAG_BUCKETS];
        st->buckets[h % FRAG_BUCKETS] = f;
        f->older = st->newest;
        if (st->newest)
            st->newest->newer = f;
        else
            st->oldest = f;
        st->newest = f;
        st->bytes += FRAG_ENTRY_BYTES;
        st->pending++;
    }
    int64_t end = off + len;
    if (f->total >= 0 && end > f->total) /* beyond the length the last fragment gave: first wins */
        end = f->total;
    if (!more && f->total < 0)
        f->total = (int32_t)end;
    if (HDR_ROOM + end > f->cap) {
        int64_t cap = HDR_ROOM + ((end + 2047) & ~(int64_t)2047);
        uint8_t *nb = realloc(f->buf, (size_t)cap);
        if (!nb)
            return FRAG_BAD;
        st->bytes += cap - f->cap;
        f->buf = nb;
        f->cap = cap;
    }
    if (off == 0 && f->hdr_len < 0) {
        f->hdr_len = (int32_t)hdr_len;
        f->nh_at = nh_at;
        f->next_proto = (uint8_t)next_proto;
        memcpy(f->buf + HDR_ROOM - hdr_len, hdr, (size_t)hdr_len);
    }
    for (int64_t u = off / 8; u * 8 < end; u++) {
        int64_t a = u * 8, z = a + 8 < end ? a + 8 : end;
        int full = z == a + 8 || (f->total >= 0 && z == f->total);
        if (f->covered[u >> 3] & (1 << (u & 7)))
            continue;
        memcpy(f->buf + HDR_ROOM + a, data + (a - off), (size_t)(z - a));
        if (full)
            f->covered[u >> 3] |= (uint8_t)(1 << (u & 7));
    }
    if (frag_complete(f)) { /* the completing record's row is the datagram, not a fragment */
        frag_unlink(st, f);
        st->done[st->n_done++] = f;
        return FRAG_DONE;
    }
    if (k->depth == 0)
        f->held++;
    while (st->bytes > st->max_bytes && st->oldest && st->oldest != f)
        frag_give_up(st, st->oldest);
    return FRAG_HELD;
}

/* ---- IP ---- */

/* A packet ending inside the fixed IP header: TRUNCATED, unless the first byte already
 * shows the wrong IP version (then the header is impossible: MALFORMED). */
static inline void
fail_short(pkt_t *k, int version)
{
    k->status = AVAIL(k) >= 1 && (k->b[k->pos] >> 4) != version ? MALFORMED : TRUNCATED;
}

static void ipv4(pkt_t *k, const cols_t *c, state_t *st, int64_t ts);
static void ipv6(pkt_t *k, const cols_t *c, state_t *st, int64_t ts);

/* Decode a completed datagram (headers then payload in f->buf) into the row of k. */
static void
reassembled(pkt_t *k, const cols_t *c, state_t *st, int64_t ts, frag_t *f)
{
    uint8_t *h = f->buf + HDR_ROOM - f->hdr_len;
    int64_t len = f->hdr_len + f->total;
    if (f->version == 4) {
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        h[6] = h[7] = 0; /* no flags, no offset: a whole datagram */
    } else {
        int64_t plen = len - 40;
        h[4] = (uint8_t)(plen >> 8);
        h[5] = (uint8_t)plen;
        h[f->nh_at] = f->next_proto;
    }
    c->frag_offset[k->i] = 0;
    c->payload_len[k->i] = 0;
    pkt_t whole = {.b = h, .i = k->i, .pos = 0, .end = len, .wire_end = len, .status = OK, .depth = k->depth,
                   .whole = 1, .verify = k->verify};
    if (f->version == 4)
        ipv4(&whole, c, st, ts);
    else
        ipv6(&whole, c, st, ts);
    c->frag[k->i] = FRAG_IS_FRAGMENT; /* reassembled from fragments */
    c->ip_id[k->i] = f->id;
    *k = whole;
}

static void
ipv4(pkt_t *k, const cols_t *c, state_t *st, int64_t ts)
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
    int zero_total = total == 0;
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
    int more = (flags_off >> 13) & 1;
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
    /* verify_checksums: Zeek drops a packet whose header checksum is wrong, and one with total
     * length 0 (its checksums are offloaded too), before any connection (weird bad_IP_checksum) */
    if (k->verify && !k->whole && (zero_total || !ipv4_header_ok(b + p, ihl))) {
        k->status = BAD_CHECKSUM;
        return;
    }
    int64_t l4len = total - ihl;
    if (frag_offset > 0 || more) {
        c->payload_len[i] = (uint32_t)l4len;
        if (frag_offset == 0) { /* the first fragment's transport header, as tcpdump filters see it */
            k->pos = p + ihl;
            transport(k, c, proto, l4len);
        }
        if (avail < total) { /* a fragment cut by the snapshot length cannot be reassembled */
            k->status = TRUNCATED;
            return;
        }
        int r = frag_add(st, k, 4, src, dst, be16(b, p + 4), proto, b + p, ihl, 0, 0, (int64_t)frag_offset * 8,
                         b + p + ihl, l4len, more, ts);
        if (r == FRAG_DONE)
            reassembled(k, c, st, ts, st->done[st->n_done - 1]);
        else
            k->status = r == FRAG_HELD ? FRAGMENT : MALFORMED;
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
ipv6(pkt_t *k, const cols_t *c, state_t *st, int64_t ts)
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
    int64_t nh_at = p + 6;          /* the byte holding nh */
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
        int prev_at = (int)(nh_at - p);
        nh = b[c0];
        nh_at = c0;
        cur = c0 + hlen;
        used += hlen;
        if (is_frag) {
            uint32_t word = be16(b, c0 + 2), offset = word >> 3;
            int more = word & 1;
            c->ip_id[i] = be32(b, c0 + 4);
            c->frag_offset[i] = (uint16_t)offset;
            c->frag[i] = (more ? FRAG_MF : 0) | (more || offset > 0 ? FRAG_IS_FRAGMENT : 0);
            k->fragment = more || offset > 0;
            if (offset > 0 || more) {
                c->ip_proto[i] = (uint8_t)nh;
                c->payload_len[i] = (uint32_t)(plen - used);
                if (offset == 0) { /* the first fragment's transport header, as tcpdump filters see it */
                    k->pos = cur;
                    transport(k, c, nh, plen - used);
                }
                if (k->end < p + 40 + plen) {
                    k->status = TRUNCATED;
                    return;
                }
                int r = frag_add(st, k, 6, c->src_ip + 16 * i, c->dst_ip + 16 * i, be32(b, c0 + 4), 0, b + p,
                                 c0 - p, prev_at, nh, (int64_t)offset * 8, b + cur, plen - used, more, ts);
                if (r == FRAG_DONE)
                    reassembled(k, c, st, ts, st->done[st->n_done - 1]);
                else
                    k->status = r == FRAG_HELD ? FRAGMENT : MALFORMED;
                return;
            }
        }
    }
    c->ip_proto[i] = (uint8_t)nh;
    k->pos = cur;
    transport(k, c, nh, plen - used);
}

/* ---- tunnels: where the inner packet starts and what link layer it has ---- */

enum { IN_NONE, IN_IP, IN_IPV4, IN_IPV6, IN_ETHER, IN_ETHERTYPE, IN_WLAN };

typedef struct {
    int kind;       /* IN_* */
    int type;       /* TUN_* */
    int64_t pos;    /* first byte of the inner packet */
    uint32_t et;    /* IN_ETHERTYPE: the ethertype */
} inner_t;

#define GRE_CSUM 0x8000u
#define GRE_ROUTING 0x4000u
#define GRE_KEY 0x2000u
#define GRE_SEQ 0x1000u
#define GRE_ACK 0x0080u
#define GRE_RESERVED 0x0078u
#define GRE_ETHER 0x6558u     /* transparent Ethernet bridging */
#define GRE_ERSPAN 0x88BEu    /* ERSPAN I (no sequence bit) and II (8-byte header) */
#define GRE_ERSPAN3 0x22EBu   /* ERSPAN III: 12-byte header, 8 more with the O flag */
#define GRE_PPTP 0x880Bu      /* enhanced GRE (version 1) */
#define ETH_HDR 14

/* GRE at pos..end (Zeek's GRE analyzer): inner start and link, or IN_NONE. */
static inner_t
gre(const uint8_t *b, int64_t pos, int64_t end)
{
    inner_t in = {.kind = IN_NONE, .type = TUN_GRE};
    int64_t len = end - pos;
    if (len < 4)
        return in;
    uint32_t flags = be16(b, pos), proto = be16(b, pos + 2), version = flags & 7;
    int64_t hl = 4 + (flags & GRE_CSUM ? 4 : 0) + (flags & GRE_KEY ? 4 : 0) + (flags & GRE_SEQ ? 4 : 0) +
                 (flags & GRE_ACK ? 4 : 0);
    if (version > 1 || (flags & GRE_ROUTING) || (flags & GRE_RESERVED))
        return in;
    int64_t extra = 0; /* PPTP's PPP header or an ERSPAN header */
    in.kind = IN_ETHER;
    if (version == 1) {
        if (proto != GRE_PPTP || len < hl + 4)
            return (inner_t){.kind = IN_NONE};
        uint32_t ppp_proto = be16(b, pos + hl + 2); /* after address and control */
        if (ppp_proto != PPP_IPV4 && ppp_proto != PPP_IPV6)
            return (inner_t){.kind = IN_NONE};
        in.kind = ppp_proto == PPP_IPV4 ? IN_IPV4 : IN_IPV6;
        extra = 4;
    } else if (proto == GRE_ETHER) {
        if (len <= hl + ETH_HDR)
            return (inner_t){.kind = IN_NONE};
    } else if (proto == GRE_ERSPAN) {
        if (len <= hl + ETH_HDR)
            return (inner_t){.kind = IN_NONE};
        extra = flags & GRE_SEQ ? 8 : 0;
    } else if (proto == GRE_ERSPAN3) {
        if (len <= hl + ETH_HDR + 12)
            return (inner_t){.kind = IN_NONE};
        extra = 12;
        if (b[pos + hl + 11] & 1) { /* optional platform-specific subheader */
            if (len <= hl + 12 + 8 + ETH_HDR)
                return (inner_t){.kind = IN_NONE};
            extra += 8;
        }
    } else if (((proto & 0x8200u) == 0x8200u && (proto & 0x0Fu) == 0) ||
               ((proto & 0x8300u) == 0x8300u && (proto & 0x0Fu) == 0 && proto <= 0x8370u) || proto == 0x9000u) {
        /* Aruba access points: an 802.11 frame */
        if (len <= hl)
            return (inner_t){.kind = IN_NONE};
        in.kind = IN_WLAN;
    } else {
        in.kind = IN_ETHERTYPE;
        in.et = proto;
    }
    if (len < hl + extra)
        return (inner_t){.kind = IN_NONE};
    in.pos = pos + hl + extra;
    return in;
}

#define PORT_GRE_UDP 4754
#define PORT_VXLAN 4789
#define PORT_GENEVE 6081
#define PORT_GTPV1_U 2152
#define PORT_GTPV1_C 2123
#define PORT_TEREDO 3544
#define PORT_AYIYA 5072
#define VXLAN_HDR 8
#define GENEVE_HDR 8
#define GTP_HDR 8
#define GTP_GPDU 0xFF
#define AYIYA_HDR 8
#define AYIYA_FORWARD 1
#define TEREDO_MIN 40

static inline int
tunnel_port(uint32_t port)
{
    return port == PORT_GRE_UDP || port == PORT_VXLAN || port == PORT_GENEVE || port == PORT_GTPV1_U ||
           port == PORT_GTPV1_C || port == PORT_TEREDO || port == PORT_AYIYA;
}

/* An IPv6 header at pos filling exactly to end (Zeek's check), or a bubble (no next header). */
static int
teredo_ipv6(const uint8_t *b, int64_t pos, int64_t end)
{
    if (end - pos < TEREDO_MIN || (b[pos] >> 4) != 6)
        return 0;
    int64_t plen = be16(b, pos + 4);
    return pos + 40 + plen == end || (b[pos + 6] == 59 && plen == 0);
}

/* Teredo (RFC 4380): optional authentication, optional origin indication, then IPv6. */
static int64_t
teredo(const uint8_t *b, int64_t pos, int64_t end)
{
    if (end - pos >= 2 && b[pos] == 0 && b[pos + 1] == 1) { /* authentication */
        if (end - pos < 4)
            return -1;
        pos += 4 + b[pos + 2] + b[pos + 3] + 8 + 1;
    }
    if (end - pos >= 2 && b[pos] == 0 && b[pos + 1] == 0) /* origin indication */
        pos += 8;
    return pos < end && teredo_ipv6(b, pos, end) ? pos : -1;
}

/* Zeek's Teredo detection on other ports: IPv6 with a Teredo (2001:0::/32) address, or
 * an origin indication (after an optional authentication header) followed by IPv6. */
static int
teredo_detect(const uint8_t *b, int64_t pos, int64_t end)
{
    int64_t len = end - pos;
    if (len < TEREDO_MIN)
        return 0;
    if ((b[pos] >> 4) == 6) {
        static const uint8_t prefix[4] = {0x20, 0x01, 0x00, 0x00};
        return !memcmp(b + pos + 8, prefix, 4) || !memcmp(b + pos + 24, prefix, 4);
    }
    if (b[pos] != 0 || (b[pos + 1] != 0 && b[pos + 1] != 1))
        return 0;
    if (b[pos + 1] == 1) {
        int64_t skip = 13 + b[pos + 2] + b[pos + 3];
        if (len < skip + TEREDO_MIN || b[pos + skip] != 0 || b[pos + skip + 1] != 0)
            return 0;
        pos += skip;
        len -= skip;
    }
    return len >= 8 + TEREDO_MIN && (b[pos + 8] >> 4) == 6;
}

/* GTPv1-U G-PDU: 8-byte header, 4 more with any of E/S/PN, then extension headers. */
static int64_t
gtpv1(const uint8_t *b, int64_t pos, int64_t end)
{
    if (end - pos < GTP_HDR)
        return -1;
    uint8_t f = b[pos];
    if ((f >> 5) != 1 || !(f & 0x10) || b[pos + 1] != GTP_GPDU)
        return -1;
    int64_t p = pos + GTP_HDR;
    if (f & 0x07) {
        if (end - p < 4)
            return -1;
        uint8_t next = b[p + 3];
        p += 4;
        for (int n = 0; next && n < 16; n++) { /* length in 4-byte units, next type last */
            if (end - p < 1 || b[p] == 0 || end - p < 4 * (int64_t)b[p])
                return -1;
            int64_t size = 4 * (int64_t)b[p];
            next = b[p + size - 1];
            p += size;
        }
        if (next)
            return -1;
    }
    return p < end ? p : -1;
}

/* The UDP payload at data..end of a datagram between sport and dport. Zeek forwards on
 * the responder's port, the destination unless only the source is a tunnel port. */
static inner_t
udp_tunnel(const uint8_t *b, int64_t pos, int64_t end, uint32_t sport, uint32_t dport)
{
    inner_t in = {.kind = IN_NONE};
    uint32_t port = tunnel_port(dport) || !tunnel_port(sport) ? dport : sport;
    int64_t len = end - pos;
    switch (port) {
    case PORT_GRE_UDP:
        return gre(b, pos, end);
    case PORT_VXLAN:
        if (len <= VXLAN_HDR)
            return in;
        return (inner_t){.kind = IN_ETHER, .type = TUN_VXLAN, .pos = pos + VXLAN_HDR};
    case PORT_GENEVE: {
        if (len < GENEVE_HDR || (b[pos] >> 6) != 0)
            return in;
        int64_t hl = GENEVE_HDR + (int64_t)(b[pos] & 0x3F) * 4;
        if (len <= hl)
            return in;
        uint32_t proto = be16(b, pos + 2);
        in = (inner_t){.kind = IN_ETHERTYPE, .type = TUN_GENEVE, .pos = pos + hl, .et = proto};
        if (proto == GRE_ETHER)
            in.kind = IN_ETHER;
        return in;
    }
    case PORT_GTPV1_U: case PORT_GTPV1_C: {
        int64_t p = gtpv1(b, pos, end);
        return p < 0 ? in : (inner_t){.kind = IN_IP, .type = TUN_GTPV1, .pos = p};
    }
    case PORT_TEREDO: {
        int64_t p = teredo(b, pos, end);
        return p < 0 ? in : (inner_t){.kind = IN_IPV6, .type = TUN_TEREDO, .pos = p};
    }
    case PORT_AYIYA:
        break;
    default:
        /* no analyzer for the port: Zeek's protocol detection (Teredo, then AYIYA) */
        if (teredo_detect(b, pos, end)) {
            int64_t p = teredo(b, pos, end);
            return p < 0 ? in : (inner_t){.kind = IN_IPV6, .type = TUN_TEREDO, .pos = p};
        }
        if (!(len >= 3 && b[pos + 1] == 0x52 && b[pos + 2] == 0x11))
            return in;
    }
    /* AYIYA: identity and signature lengths from the header, "forward" opcode, next header */
    if (len < AYIYA_HDR)
        return in;
    int64_t hl = AYIYA_HDR + (1 << (b[pos] >> 4)) + (b[pos + 1] >> 4) * 4;
    if (len <= hl || (b[pos + 2] & 0x0F) != AYIYA_FORWARD)
        return in;
    int nh = b[pos + 3];
    if (nh != 4 && nh != 41)
        return in;
    return (inner_t){.kind = nh == 4 ? IN_IPV4 : IN_IPV6, .type = TUN_AYIYA, .pos = pos + hl};
}

/* The encapsulated packet inside the decoded packet k (status OK), if any. */
static inner_t
find_inner(const pkt_t *k, const cols_t *c)
{
    int64_t i = k->i;
    int proto = c->ip_proto[i];
    if (proto == 4 || proto == 41) {
        if (k->data >= k->data_end)
            return (inner_t){.kind = IN_NONE};
        return (inner_t){.kind = proto == 4 ? IN_IPV4 : IN_IPV6, .type = TUN_IP, .pos = k->data};
    }
    if (proto == 47)
        return gre(k->b, k->data, k->data_end);
    if (proto == UDP && k->data < k->data_end)
        return udp_tunnel(k->b, k->data, k->data_end, c->src_port[i], c->dst_port[i]);
    return (inner_t){.kind = IN_NONE};
}

/* The inner packet's link layer: its IP version (4 / 6), or 0 when it is not IP. */
static int
inner_link(pkt_t *k, const cols_t *c, const inner_t *in)
{
    switch (in->kind) {
    case IN_IPV4: return 4;
    case IN_IPV6: return 6;
    case IN_IP: return raw(k, LT_RAW);
    case IN_ETHER: return ethernet(k, c);
    case IN_ETHERTYPE: return in->et == ETH_IPV4 ? 4 : in->et == ETH_IPV6 ? 6 : ethertype(k, c, in->et);
    case IN_WLAN: return wlan(k, c, LT_IEEE802_11);
    default: return 0;
    }
}

/* ---- ICMP errors: the header they quote ---- */

/* Messages that quote the packet they report on (Zeek parses their context: Context4 for
 * unreachable and time exceeded, Context6 for every ICMPv6 error type < 128): destination
 * unreachable, time exceeded, parameter problem; ICMPv6 packet too big too. */
static inline int
icmp_error(int proto, int type)
{
    if (proto == ICMP)
        return type == 3 || type == 11 || type == 12;
    return type >= 1 && type <= 4;
}

/* The header quoted at q (up to end) into row j: addresses, protocol, length, and the ports
 * (TCP, UDP; TCP's sequence number when quoted) or type and code (ICMP) of the five-tuple it
 * names. OK when the IP header and the 4 bytes after it are there (Zeek's context needs them
 * for ports), TRUNCATED when fewer, MALFORMED when it is not an IP header of the ICMP's
 * version, FRAGMENT for a non-first fragment (no ports). The quoted length is the original
 * datagram's: a quote is never complete, so it is not checked against the bytes present. */
static void
quote(const cols_t *c, const uint8_t *b, int64_t q, int64_t end, int64_t j, int version)
{
    int64_t avail = end - q, hl, nh;
    c->ip_version[j] = (uint8_t)version;
    c->status[j] = TRUNCATED;
    if (avail < (version == 4 ? 20 : 40))
        return;
    if ((b[q] >> 4) != version) {
        c->status[j] = MALFORMED;
        return;
    }
    int later_fragment = 0;
    if (version == 4) {
        hl = (int64_t)(b[q] & 0x0F) * 4;
        if (hl < 20) {
            c->status[j] = MALFORMED;
            return;
        }
        nh = b[q + 9];
        uint32_t flags_off = be16(b, q + 6);
        c->ip_len[j] = be16(b, q + 2);
        c->ip_id[j] = be16(b, q + 4);
        c->ttl[j] = b[q + 8];
        c->frag[j] = ((flags_off >> 13) & (FRAG_MF | FRAG_DF)) | ((flags_off & 0x3FFF) ? FRAG_IS_FRAGMENT : 0);
        c->frag_offset[j] = flags_off & 0x1FFF;
        later_fragment = (flags_off & 0x1FFF) != 0;
        uint8_t *src = c->src_ip + 16 * j, *dst = c->dst_ip + 16 * j;
        src[10] = src[11] = dst[10] = dst[11] = 0xFF;
        memcpy(src + 12, b + q + 12, 4);
        memcpy(dst + 12, b + q + 16, 4);
    } else {
        nh = b[q + 6];
        hl = 40;
        c->ip_len[j] = be16(b, q + 4) + 40;
        c->ttl[j] = b[q + 7];
        memcpy(c->src_ip + 16 * j, b + q + 8, 16);
        memcpy(c->dst_ip + 16 * j, b + q + 24, 16);
        for (int depth = 0; ipv6_ext((int)nh) && depth < MAX_IPV6_EXT; depth++) {
            if (avail < hl + 8)
                return;
            int64_t ext = nh == IPV6_FRAGMENT ? 8 : nh == IPV6_AH ? (b[q + hl + 1] + 2) * 4 : (b[q + hl + 1] + 1) * 8;
            if (nh == IPV6_FRAGMENT) {
                uint32_t word = be16(b, q + hl + 2);
                c->frag_offset[j] = (uint16_t)(word >> 3);
                c->frag[j] = (word & 1 ? FRAG_MF : 0) | ((word & 1) || (word >> 3) ? FRAG_IS_FRAGMENT : 0);
                c->ip_id[j] = be32(b, q + hl + 4);
                later_fragment = (word >> 3) != 0;
            }
            nh = b[q + hl];
            hl += ext;
        }
        if (ipv6_ext((int)nh)) {
            c->status[j] = MALFORMED;
            return;
        }
    }
    c->ip_proto[j] = (uint8_t)nh;
    if (later_fragment) {
        c->status[j] = FRAGMENT;
        return;
    }
    if (avail < hl + 4)
        return;
    int64_t t = q + hl;
    if (nh == TCP || nh == UDP) {
        c->src_port[j] = be16(b, t);
        c->dst_port[j] = be16(b, t + 2);
        if (nh == TCP && avail >= hl + 8)
            c->seq[j] = be32(b, t + 4);
    } else if (nh == ICMP || nh == ICMPV6) {
        c->icmp_type[j] = b[t];
        c->icmp_code[j] = b[t + 1];
    }
    c->status[j] = OK;
}

/* Every column of row i to 0 before the row is decoded: a layer writes only the values it
 * finds, and the columns' memory is reused from chunk to chunk (fast.py), not zero-filled.
 * Zeroing here, row by row, touches only lines the row's values are written to anyway. */
static inline void
zero_row(const cols_t *c, int64_t i)
{
    c->vlan[i] = c->inner_vlan[i] = 0;
    c->status[i] = c->ip_version[i] = c->ip_proto[i] = c->ttl[i] = c->frag[i] = 0;
    memset(c->src_ip + 16 * i, 0, 16);
    memset(c->dst_ip + 16 * i, 0, 16);
    c->ip_len[i] = c->ip_id[i] = 0;
    c->frag_offset[i] = c->src_port[i] = c->dst_port[i] = c->tcp_flags[i] = 0;
    c->seq[i] = c->ack[i] = 0;
    c->window[i] = c->mss[i] = c->udp_len[i] = 0;
    c->tcp_hdr_len[i] = c->tcp_opts[i] = c->wscale[i] = c->icmp_type[i] = c->icmp_code[i] = 0;
    c->tsval[i] = c->tsecr[i] = c->payload_len[i] = 0;
    c->tunnel_depth[i] = c->tunnel_type[i] = c->tunnel_proto[i] = 0;
    memset(c->tunnel_src_ip + 16 * i, 0, 16);
    memset(c->tunnel_dst_ip + 16 * i, 0, 16);
    c->tunnel_src_port[i] = c->tunnel_dst_port[i] = 0;
    if (c->payload_start) {
        c->payload_start[i] = 0;
        c->payload_caplen[i] = 0;
    }
    if (c->bad_checksum)
        c->bad_checksum[i] = 0;
}

/* One record: the captured packet in row `row`, then one row per tunnel layer inside it.
 * Returns the number of rows written (at most ROWS_PER_RECORD). */
static int
decode_record(const cols_t *c, state_t *st, const uint8_t *buf, int64_t row, int64_t s, int64_t end,
              int64_t wire_end, int lt, int64_t ts)
{
    pkt_t k = {.b = buf, .i = row, .pos = s, .end = end, .wire_end = wire_end, .status = OK, .verify = (uint8_t)st->verify};
    zero_row(c, row);
    int version = link_layer(&k, c, lt), rows = 1;
    for (;;) {
        if (version == 4)
            ipv4(&k, c, st, ts);
        else if (version == 6)
            ipv6(&k, c, st, ts);
        c->status[k.i] = k.status;
        if (!version || k.status != OK || !st->decap || k.depth >= MAX_TUNNEL_DEPTH)
            return rows;
        if (c->bad_checksum && c->bad_checksum[k.i])
            return rows; /* Zeek analyses nothing inside a packet whose checksum is wrong */
        int proto = c->ip_proto[k.i];
        if ((proto == ICMP || proto == ICMPV6) && icmp_error(proto, c->icmp_type[k.i])) {
            int64_t j = k.i + 1;
            zero_row(c, j);
            quote(c, k.b, k.data + ICMP_HEADER, k.data_end, j, version);
            c->vlan[j] = c->vlan[k.i];
            c->inner_vlan[j] = c->inner_vlan[k.i];
            c->tunnel_depth[j] = (uint8_t)(k.depth + 1);
            c->tunnel_type[j] = TUN_ICMP_QUOTE;
            memcpy(c->tunnel_src_ip + 16 * j, c->src_ip + 16 * k.i, 16);
            memcpy(c->tunnel_dst_ip + 16 * j, c->dst_ip + 16 * k.i, 16);
            c->tunnel_src_port[j] = c->icmp_type[k.i]; /* the ICMP error's type and code, as flows key ICMP */
            c->tunnel_dst_port[j] = c->icmp_code[k.i];
            c->tunnel_proto[j] = (uint8_t)proto;
            return rows + 1;
        }
        inner_t in = find_inner(&k, c);
        if (in.kind == IN_NONE)
            return rows;
        int64_t j = k.i + 1;
        zero_row(c, j);
        pkt_t inner = {.b = k.b, .i = j, .pos = in.pos, .end = k.data_end, .wire_end = k.data_wire_end,
                       .status = OK, .depth = k.depth + 1, .verify = k.verify};
        version = inner_link(&inner, c, &in);
        if (version != 4 && version != 6) { /* not IP inside: no row (clear what the link wrote) */
            c->vlan[j] = c->inner_vlan[j] = 0;
            return rows;
        }
        c->tunnel_depth[j] = (uint8_t)inner.depth;
        c->tunnel_type[j] = (uint8_t)in.type;
        memcpy(c->tunnel_src_ip + 16 * j, c->src_ip + 16 * k.i, 16);
        memcpy(c->tunnel_dst_ip + 16 * j, c->dst_ip + 16 * k.i, 16);
        c->tunnel_src_port[j] = c->src_port[k.i];
        c->tunnel_dst_port[j] = c->dst_port[k.i];
        c->tunnel_proto[j] = c->ip_proto[k.i];
        k = inner;
        rows++;
    }
}

static void
state_free(PyObject *capsule)
{
    state_t *st = PyCapsule_GetPointer(capsule, "flowkit.decode.state");
    if (!st)
        return;
    frags_clear(st);
    free(st);
}

static state_t *
state_of(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, "flowkit.decode.state");
}

static PyObject *
new_state(PyObject *self, PyObject *args)
{
    int decap, reassemble, verify = 0;
    long long timeout_ns, max_bytes;
    if (!PyArg_ParseTuple(args, "ppLL|p", &decap, &reassemble, &timeout_ns, &max_bytes, &verify))
        return NULL;
    state_t *st = calloc(1, sizeof *st);
    if (!st)
        return PyErr_NoMemory();
    st->decap = decap;
    st->reassemble = reassemble;
    st->verify = verify;
    st->timeout_ns = timeout_ns;
    st->max_bytes = max_bytes;
    PyObject *cap = PyCapsule_New(st, "flowkit.decode.state", state_free);
    if (!cap)
        free(st);
    return cap;
}

/* Give up every pending datagram; returns (and resets) the depth-0 records given up so far. */
static PyObject *
finish(PyObject *self, PyObject *arg)
{
    state_t *st = state_of(arg);
    if (!st)
        return NULL;
    frags_clear(st);
    long long n = st->given_up;
    st->given_up = 0;
    return PyLong_FromLongLong(n);
}

static PyObject *
take_given_up(PyObject *self, PyObject *arg)
{
    state_t *st = state_of(arg);
    if (!st)
        return NULL;
    long long n = st->given_up;
    st->given_up = 0;
    return Py_BuildValue("LLL", n, (long long)st->pending, (long long)st->bytes);
}

static PyObject *
decode(PyObject *self, PyObject *args)
{
    PyObject *ostate, *obuf, *ostart, *ocaplen, *owirelen, *olink, *ots, *ocols, *orec, *opstart = NULL, *opcap = NULL;
    PyObject *obad = NULL;
    Py_ssize_t first;
    if (!PyArg_ParseTuple(args, "OOOOOOOO!On|OOO", &ostate, &obuf, &ostart, &ocaplen, &owirelen, &olink, &ots,
                          &PyTuple_Type, &ocols, &orec, &first, &opstart, &opcap, &obad))
        return NULL;
    state_t *st = state_of(ostate);
    if (!st)
        return NULL;
    if (PyTuple_GET_SIZE(ocols) != N_COLUMNS)
        return PyErr_Format(PyExc_ValueError, "expected %d columns, got %zd", N_COLUMNS, PyTuple_GET_SIZE(ocols));
    views_t vin = {.n = 0}, vout = {.n = 0};
    Py_ssize_t size, n, c1, c2, c3, c4, cap;
    const uint8_t *buf = view_of(&vin, obuf, "B", 0, "data", &size);
    const int64_t *start = buf ? view_of(&vin, ostart, "l", 0, "start", &n) : NULL;
    const uint32_t *caplen = start ? view_of(&vin, ocaplen, "I", 0, "caplen", &c1) : NULL;
    const uint32_t *wirelen = caplen ? view_of(&vin, owirelen, "I", 0, "wirelen", &c2) : NULL;
    const uint16_t *linktype = wirelen ? view_of(&vin, olink, "H", 0, "linktype", &c3) : NULL;
    const int64_t *tss = linktype ? view_of(&vin, ots, "l", 0, "ts", &c4) : NULL;
    int64_t *rec = tss ? view_of(&vout, orec, "l", 1, "rec", &cap) : NULL;
    int ok = rec != NULL;
    if (ok && (c1 != n || c2 != n || c3 != n || c4 != n)) {
        PyErr_SetString(PyExc_ValueError, "start, caplen, wirelen, linktype and ts differ in length");
        ok = 0;
    }
    if (ok && (first < 0 || first > n)) {
        PyErr_SetString(PyExc_ValueError, "first record out of range");
        ok = 0;
    }
    cols_t cols = {.record = buf};
    if (ok && opstart && opcap) {
        Py_ssize_t n1, n2;
        cols.payload_start = view_of(&vout, opstart, "l", 1, "payload_start", &n1);
        cols.payload_caplen = cols.payload_start ? view_of(&vout, opcap, "I", 1, "payload_caplen", &n2) : NULL;
        if (!cols.payload_caplen)
            ok = 0;
        else if (n1 != cap || n2 != cap) {
            PyErr_SetString(PyExc_ValueError, "payload_start and payload_caplen must have one item per row");
            ok = 0;
        }
    }
    if (ok && obad && obad != Py_None) {
        Py_ssize_t n3;
        cols.bad_checksum = view_of(&vout, obad, "B", 1, "bad_checksum", &n3);
        if (!cols.bad_checksum)
            ok = 0;
        else if (n3 != cap) {
            PyErr_SetString(PyExc_ValueError, "bad_checksum must have one item per row");
            ok = 0;
        }
    }
    for (int j = 0; ok && j < N_COLUMNS; j++) {
        Py_ssize_t count;
        void *ptr = view_of(&vout, PyTuple_GET_ITEM(ocols, j), COLUMNS[j].fmt, 1, COLUMNS[j].name, &count);
        if (!ptr) {
            ok = 0;
        } else if (count != cap * COLUMNS[j].width) {
            PyErr_Format(PyExc_ValueError, "%s: expected %zd items, got %zd", COLUMNS[j].name,
                         cap * COLUMNS[j].width, count);
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
    Py_ssize_t i = first, row = 0;
    Py_BEGIN_ALLOW_THREADS
    /* a record may need ROWS_PER_RECORD rows: stop while that many are still free */
    for (; i < n && cap - row >= ROWS_PER_RECORD; i++) {
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
        if (st->oldest)
            frag_expire(st, tss[i]);
        int rows = decode_record(&cols, st, buf, row, s, end, s + (wl > cl ? wl : cl), linktype[i], tss[i]);
        for (int r = 0; r < st->n_done; r++) {
            free(st->done[r]->buf);
            free(st->done[r]);
        }
        st->n_done = 0;
        for (int r = 0; r < rows; r++)
            rec[row + r] = i;
        row += rows;
    }
    Py_END_ALLOW_THREADS
    views_release(&vout);
    views_release(&vin);
    return Py_BuildValue("nn", i, row);
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(state, data, start, caplen, wirelen, linktype, ts, columns, rec, first) -> (next, rows): decode "
     "records from `first` into the columns (a tuple in COLUMNS order, each row zeroed first; `rec` the record of "
     "each row) while ROWS_PER_RECORD rows are free; with the two optional arrays (one item per row), also where "
     "each TCP/UDP row's captured payload is in data; with a third (bad_checksum, uint8), the transport "
     "checksums are verified there (the state's verify)."},
    {"new_state", new_state, METH_VARARGS,
     "new_state(decap, reassemble, frag_timeout_ns, frag_max_bytes, verify=False): decoder state kept across chunks "
     "(pending fragments); verify: checksums as Zeek without -C (IPv4 header: status BAD_CHECKSUM)."},
    {"finish", finish, METH_O, "finish(state) -> records given up, after giving up every pending datagram."},
    {"take_given_up", take_given_up, METH_O,
     "take_given_up(state) -> (records given up since the last call, pending datagrams, pending bytes)."},
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
                                    LT_FDDI, LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2, LT_C_HDLC, LT_IEEE802_11,
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
              PyModule_AddObjectRef(m, "SUPPORTED_LINKTYPES", sup) < 0 ||
              PyModule_AddIntConstant(m, "ROWS_PER_RECORD", ROWS_PER_RECORD) < 0 ||
              PyModule_AddIntConstant(m, "MAX_TUNNEL_DEPTH", MAX_TUNNEL_DEPTH) < 0;
    Py_XDECREF(names);
    Py_XDECREF(sup);
    if (bad) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
