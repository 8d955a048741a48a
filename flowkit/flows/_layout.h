/* Layout of the connection rows shared by the C kernels of flows/ (conn_t, side_t,
 * conn_key_t), the one source of it (_machine exports the sizes and the offsets of the
 * fields Python reads: flows/layout.py), the constants of the state machine, and the hash mix. */
#ifndef FLOWKIT_LAYOUT_H
#define FLOWKIT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define INF ((int64_t)1 << 62)
#define NS_PER_S 1000000000LL
#define HMAX 48
#define TOO_LARGE_SEQ_DELTA 1048576
#define CLOSE_DELAY_NS (5 * NS_PER_S)
#define ATTEMPT_DELAY_NS (5 * NS_PER_S)

enum { INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET };

/* server name (TLS SNI / HTTP Host) bytes kept in a row, NUL-terminated */
#define NAME_LEN 96

/* Tunnels (_conn.h's tunnel_packet): `encloses` is set when a packet of the connection carried
 * another flow packet (the connection is a tunnel parent); `par` holds N_PAR parent slots:
 * the parent connection's key hash and the first and last time a packet of this connection
 * came through it, resolved to flow_ids at the end. */
#define N_PAR 4
enum { P_KEY, P_FIRST, P_LAST, PAR_WIDTH }; /* a slot as three int64 output columns (_rows.c) */

typedef struct __attribute__((packed)) {
    uint64_t key;
    int64_t first, last;
} par_t;

/* One endpoint of a connection (sides 0/1: the canonical sides of its key). Fields are sized
 * to their ranges: times, packet and byte counts and sequence numbers relative to the start
 * (they run past 2**32 on long transfers) 8 bytes; absolute 32-bit sequence numbers and the
 * flag counts (uint32 columns of the table) 4; states and flags 1. Packed: rows are read
 * where they lie (x86 loads need no alignment). */
typedef struct __attribute__((packed)) {
    int64_t pkts, ipb, udpb;               /* packets, IP bytes, UDP payload bytes */
    int64_t lastrel, ackrel;               /* last sequence sent / acknowledged, relative to start */
    int64_t hsyn, hfin, hrst;              /* relative sequence of the last SYN, FIN, RST letter (INF: none) */
    int64_t syncnt, synts, synlast, synackts, ackts; /* handshake count and times (-1: none) */
    int64_t rtop, blk0, blk1, missed;      /* content gaps (_conn.h: data_seen, ack_gap) */
    int64_t rxcnt, zwcnt, gapcnt, chkcnt;  /* scaled letters: retransmissions, zero windows, gaps, bad checksums */
    uint32_t start, lastabs, ackabs;       /* absolute sequence numbers (32-bit) */
    uint32_t fl[8];                        /* packets with each flag (FLAG_BITS order) */
    uint8_t state, prev, didclose, fins, init; /* TCP endpoint state and the one before; fins: FINs sent, saturating */
} side_t;

/* One connection's state (a row of C). */
typedef struct __attribute__((packed)) {
    int64_t ts0, tslast, tspkt;            /* first packet, end of the row (ts_end), last packet */
    int64_t close_dl, att_dl, act_dl;      /* close delay, attempt timer, active timeout deadlines (INF: none) */
    int64_t errs, esrchi, esrclo;          /* ICMP errors reporting on it, the last one's sender */
    uint64_t svc;                          /* service identification state (protocols/_identify.h's svc_t) ... */
    int64_t svcn;                          /* ... its count, sign bit: settled */
    par_t par[N_PAR];
    side_t side[2];
    uint32_t hseen;                        /* history letters seen: originator's bits 0-15, responder's 16-31 */
    uint8_t orig, proto, prefix, hlen, flipped, encloses, etype, ecode; /* etype/ecode: the last ICMP error's */
    char name[NAME_LEN];
} conn_t;

/* A connection's key (a row of K). */
typedef struct __attribute__((packed)) {
    uint64_t hash, ahi, alo, bhi, blo;     /* key hash; address words of sides 0 and 1 */
    uint16_t aport, bport, vlan, ivlan;    /* ports (ICMP: type and counterpart/code), VLAN tags */
    uint8_t proto, ipver;
} conn_key_t;

enum { H_SYN = 1, H_FIN = 2, H_RST = 4, H_FINRST = 8, H_ACK = 16, H_DATA = 32, H_CORRUPT = 64, H_MULTI = 128 };
enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_PSH = 8, TH_ACK = 16, TH_URG = 32, TH_ECE = 64, TH_CWR = 128 };

/* What a flow packet is (_rules.h's flow_packet): a packet of its connection, one whose
 * transport checksum was wrong (verify_checksums), or the header an ICMP error quotes,
 * which reports on the connection of its five-tuple without being one of its packets. */
enum { PK_PACKET, PK_BAD_CHECKSUM, PK_ICMP_REPORT };

/* a packet's key as int64 words (_rules.h fills it; stored as conn_key_t by store_key) */
enum { K_HASH, K_AHI, K_ALO, K_BHI, K_BLO, K_APORT, K_BPORT, K_PROTO, K_VLAN, K_IVLAN, K_IPVER, N_KEY };

static inline void
store_key(conn_key_t *k, const int64_t *key)
{
    k->hash = (uint64_t)key[K_HASH];
    k->ahi = (uint64_t)key[K_AHI];
    k->alo = (uint64_t)key[K_ALO];
    k->bhi = (uint64_t)key[K_BHI];
    k->blo = (uint64_t)key[K_BLO];
    k->aport = (uint16_t)key[K_APORT];
    k->bport = (uint16_t)key[K_BPORT];
    k->vlan = (uint16_t)key[K_VLAN];
    k->ivlan = (uint16_t)key[K_IVLAN];
    k->proto = (uint8_t)key[K_PROTO];
    k->ipver = (uint8_t)key[K_IPVER];
}

/* The fields Python reads or writes (flows/layout.py builds numpy dtypes of them), exported
 * by _machine: name, byte offset, size and kind ('i', 'u'; 'V' bytes). */
typedef struct {
    const char *name;
    size_t offset, size;
    char kind;
} field_t;

#define FIELD_KIND(x)                                                                                     \
    _Generic((x), int64_t: 'i', int32_t: 'i', int16_t: 'i', int8_t: 'i', uint64_t: 'u', uint32_t: 'u',     \
             uint16_t: 'u', uint8_t: 'u', default: 'V')
#define FIELD(T, name, member) {name, offsetof(T, member), sizeof(((T *)0)->member), FIELD_KIND(((T *)0)->member)}

/* Fold v into hash h (splitmix64 finaliser), wrapping uint64. */
static inline uint64_t
mix(uint64_t h, uint64_t v)
{
    uint64_t x = (h ^ v) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

#endif
