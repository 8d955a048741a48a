/* Layout of the connection rows shared by the C kernels of flows/, the one source of
 * these constants (_machine exports the few Python needs), and the hash mix. */
#ifndef FLOWKIT_LAYOUT_H
#define FLOWKIT_LAYOUT_H

#include <stdint.h>

#define INF ((int64_t)1 << 62)
#define NS_PER_S 1000000000LL
#define HMAX 48
#define TOO_LARGE_SEQ_DELTA 1048576
#define CLOSE_DELAY_NS (5 * NS_PER_S)
#define ATTEMPT_DELAY_NS (5 * NS_PER_S)

enum { INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET };

/* server name (TLS SNI / HTTP Host) bytes kept in a row: NAME_WORDS int64 columns, NUL-terminated */
#define NAME_WORDS 12

/* Tunnels (_conn.h's tunnel_packet): F_ENCLOSES is set when a packet of the connection carried
 * another flow packet (the connection is a tunnel parent); F_PAR holds N_PAR parent slots of
 * PAR_WIDTH fields (P_KEY the parent connection's key hash, P_FIRST / P_LAST the first and
 * last time a packet of this connection came through it), resolved to flow_ids at the end. */
#define N_PAR 4
enum { P_KEY, P_FIRST, P_LAST, PAR_WIDTH };

/* F_SVC, F_SVCN: service identification state (protocols/_identify.h's svc_t) */
enum {
    F_TS0, F_TSLAST, F_CLOSE_DL, F_ATT_DL, F_ORIG, F_PROTO, F_PREFIX, F_HLEN, F_HSEEN,
    F_SLOT, F_TSPKT, F_ACT_DL, F_FLIPS,
    F_ERRS, F_ETYPE, F_ECODE, F_ESRCHI, F_ESRCLO, /* ICMP errors reporting on this connection (_conn.h: icmp_report) */
    F_SVC, F_SVCN, F_NAME, F_ENCLOSES = F_NAME + NAME_WORDS, F_PAR, N_CONN = F_PAR + N_PAR * PAR_WIDTH
};

enum {
    S_PKTS, S_IPB, S_UDPB, S_FL, /* 8 flag counters */
    S_STATE = 11, S_PREV, S_DIDCLOSE, S_START, S_LASTABS, S_LASTREL, S_ACKABS, S_ACKREL,
    S_FINCNT, S_HSYN, S_HFIN, S_HRST, S_RXCNT, S_RXTH, S_ZWCNT, S_ZWTH,
    S_SYNTS, S_SYNCNT, S_SYNLAST, S_SYNACKTS, S_ACKTS, S_INIT,
    S_RTOP, S_BLK0, S_BLK1, S_GAPCNT, S_GAPTH, S_MISSED, /* content gaps (_conn.h: data_seen, ack_gap) */
    S_CHKCNT, S_CHKTH, /* bad checksums (_conn.h: checksum_error) */
    N_SIDE
};

#define NCOL (N_CONN + 2 * N_SIDE)
#define N_KEY 11

enum { H_SYN = 1, H_FIN = 2, H_RST = 4, H_FINRST = 8, H_ACK = 16, H_DATA = 32, H_CORRUPT = 64, H_MULTI = 128 };
enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_PSH = 8, TH_ACK = 16, TH_URG = 32, TH_ECE = 64, TH_CWR = 128 };

/* What a flow packet is (_rules.h's flow_packet): a packet of its connection, one whose
 * transport checksum was wrong (verify_checksums), or the header an ICMP error quotes,
 * which reports on the connection of its five-tuple without being one of its packets. */
enum { PK_PACKET, PK_BAD_CHECKSUM, PK_ICMP_REPORT };

/* columns of the per-key matrix K (a connection's key; _rules.h fills it) */
enum { K_HASH, K_AHI, K_ALO, K_BHI, K_BLO, K_APORT, K_BPORT, K_PROTO, K_VLAN, K_IVLAN, K_IPVER };

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
