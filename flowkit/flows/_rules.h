/* The per-packet flow rules, once, for both flow drivers (_stream.c: one pass;
 * _machine.c: mergeable partial state):
 *   which decoded packets make flows, the connection key and the packet's side, the key
 *   hash, the payload size counted, the likely-server-port and group-address flags that
 *   orient a new connection, and the inactivity timeout of a protocol.
 * docs/semantics.md gives the sources (Zeek's) of each rule; docs/architecture.md says
 * what to change here to add a protocol to the flow key.
 */
#ifndef FLOWKIT_RULES_H
#define FLOWKIT_RULES_H

#include "_columns.h"
#include "_layout.h"

/* The decoded packet columns (decode/schema.py's PACKET_SCHEMA) the flow drivers read,
 * in the order of PACKET_COLUMNS below; both drivers bind them with bind_columns. */
typedef struct {
    int64_t *ts, *index;
    uint8_t *src_ip, *dst_ip, *ip_proto, *ip_version, *status, *icmp_type, *icmp_code, *tunnel_depth;
    uint16_t *src_port, *dst_port, *vlan, *inner_vlan, *tcp_flags, *window, *udp_len;
    uint32_t *seq, *ack, *payload_len, *ip_len;
    uint8_t *bad_checksum, *tunnel_type, *tunnel_src_ip;
    uint16_t *tunnel_src_port, *tunnel_dst_port;
    /* not decoded columns: tunnel_links below fills them for a whole batch (keys.packet_arrays) */
    uint64_t *parent;
    uint8_t *encloses;
} packet_cols_t;

static const column_t PACKET_COLUMNS[] = {
#define COL(name, fmt, width) {#name, fmt, width, offsetof(packet_cols_t, name), 0}
    COL(ts, "l", 1), COL(src_ip, "B", 16), COL(dst_ip, "B", 16), COL(src_port, "H", 1), COL(dst_port, "H", 1),
    COL(ip_proto, "B", 1), COL(vlan, "H", 1), COL(inner_vlan, "H", 1), COL(ip_version, "B", 1),
    COL(status, "B", 1), COL(tcp_flags, "H", 1), COL(seq, "I", 1), COL(ack, "I", 1), COL(window, "H", 1),
    COL(payload_len, "I", 1), COL(udp_len, "H", 1), COL(ip_len, "I", 1), COL(icmp_type, "B", 1),
    COL(icmp_code, "B", 1), COL(bad_checksum, "B", 1), COL(tunnel_type, "B", 1), COL(tunnel_src_ip, "B", 16),
    COL(tunnel_src_port, "H", 1), COL(tunnel_dst_port, "H", 1), COL(index, "l", 1), COL(tunnel_depth, "B", 1),
    COL(parent, "L", 1), COL(encloses, "B", 1),
#undef COL
};
#define N_PACKET_COLUMNS ((int)(sizeof PACKET_COLUMNS / sizeof PACKET_COLUMNS[0]))

/* decode/schema.py's Tunnel.ICMP_QUOTE: the row of the header an ICMP error quotes, whose
 * tunnel_src_ip is the error's sender and tunnel_src_port/tunnel_dst_port its type/code */
#define TUNNEL_ICMP_QUOTE 8

/* One flow packet: its connection key (K row, canonical side order), side and fields;
 * kind PK_*; for PK_ICMP_REPORT the error's type, code and sender (ehi, elo). */
typedef struct {
    int64_t key[N_KEY];
    int64_t side, t, flags, seq, ack, win, plen, iplen, proto;
    int64_t kind, etype, ecode, ehi, elo;
    int64_t encloses;
    uint64_t parent; /* key hash of the connection of the packet that carried this one; 0: none */
} flow_pkt_t;

static inline uint64_t
be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Selection: every IP packet decoded without error (status OK) makes a flow, whatever its
 * protocol, as Zeek's conn.log has TCP, UDP, ICMP and unknown_transport rows. Non-first
 * fragments have status FRAGMENT and stay out (counted in the ledger only). */
static inline int
is_flow_packet(int64_t status, int64_t ip_version)
{
    return status == 0 && ip_version != 0;
}

/* Protocols whose flows are keyed by ports; ICMP and ICMPv6 use type and counterpart/code
 * as ports; every other protocol is keyed by its addresses alone (ports 0), as Zeek's
 * unknown_transport. */
static inline int
has_ports(int64_t proto)
{
    return proto == 6 || proto == 17;
}

static inline int
is_icmp(int64_t proto)
{
    return proto == 1 || proto == 58;
}

/* Zeek's ICMP4_counterpart / ICMP6_counterpart (packet_analysis/protocol/icmp/ICMP.cc):
 * request/reply types map to their counterpart and share one connection; every other
 * type is one-way (-1 here) and its code is the responder "port". */
static inline int64_t
icmp_counterpart(int64_t proto, int64_t type)
{
    if (proto == 1) {
        switch (type) {
        case 8: return 0;
        case 0: return 8;
        case 13: return 14;
        case 14: return 13;
        case 15: return 16;
        case 16: return 15;
        case 10: return 9;
        case 9: return 10;
        case 17: return 18;
        case 18: return 17;
        }
        return -1;
    }
    switch (type) {
    case 128: return 129;
    case 129: return 128;
    case 133: return 134;
    case 134: return 133;
    case 135: return 136;
    case 136: return 135;
    case 130: return 131;
    case 131: return 130;
    case 139: return 140;
    case 140: return 139;
    case 144: return 145;
    case 145: return 144;
    }
    return -1;
}

/* Inactivity timeout of a connection of protocol `proto`: TCP's, or the one of UDP, which
 * ICMP and other protocols share (Zeek: 1 min each). */
static inline int64_t
timeout_of(int64_t proto, int64_t tcp_ns, int64_t udp_ns)
{
    return proto == 6 ? tcp_ns : udp_ns;
}

/* The key hash: endpoints, ports, protocol, and the VLAN tags when `vlan_key` (Zeek's default
 * key ignores them; policy/frameworks/conn_key/vlan_fivetuple.zeek adds them). Connections
 * are told apart by this hash alone: a 64-bit collision would merge two, at 2**-64 per pair
 * it is ignored. The K row keeps the packet's tags either way (the flow table's columns). */
static inline uint64_t
key_hash(const int64_t *key, int vlan_key)
{
    uint64_t h = mix(mix(mix(mix(0, (uint64_t)key[K_AHI]), (uint64_t)key[K_ALO]), (uint64_t)key[K_BHI]),
                     (uint64_t)key[K_BLO]);
    h = mix(h, (uint64_t)((key[K_APORT] << 16) | key[K_BPORT]));
    uint64_t tags = vlan_key ? ((uint64_t)key[K_VLAN] << 16) | (uint64_t)key[K_IVLAN] : 0;
    return mix(h, ((uint64_t)key[K_PROTO] << 32) | tags);
}

/* Packet i of the columns as a flow packet; 0 when it makes no flow. Side 0 is the smaller
 * endpoint (address bytes, then port): the order Community ID uses, so both directions
 * share one key. */
static inline int
flow_packet(const packet_cols_t *p, Py_ssize_t i, int vlan_key, flow_pkt_t *out)
{
    int64_t proto = p->ip_proto[i];
    if (!is_flow_packet(p->status[i], p->ip_version[i]))
        return 0;
    const uint8_t *sa = p->src_ip + i * 16, *da = p->dst_ip + i * 16;
    uint64_t shi = be64(sa), slo = be64(sa + 8), dhi = be64(da), dlo = be64(da + 8);
    int64_t sport = 0, dport = 0, one_way = 0;
    if (has_ports(proto)) {
        sport = p->src_port[i];
        dport = p->dst_port[i];
    } else if (is_icmp(proto)) {
        sport = p->icmp_type[i];
        dport = icmp_counterpart(proto, sport);
        one_way = dport < 0;
        if (one_way)
            dport = p->icmp_code[i];
    }
    /* a one-way ICMP message keys its own direction: its sender is always side 0 */
    int64_t side = !one_way && (shi > dhi || (shi == dhi && (slo > dlo || (slo == dlo && sport > dport))));
    int64_t *key = out->key;
    key[K_AHI] = (int64_t)(side ? dhi : shi);
    key[K_ALO] = (int64_t)(side ? dlo : slo);
    key[K_BHI] = (int64_t)(side ? shi : dhi);
    key[K_BLO] = (int64_t)(side ? slo : dlo);
    key[K_APORT] = side ? dport : sport;
    key[K_BPORT] = side ? sport : dport;
    key[K_PROTO] = proto;
    key[K_VLAN] = p->vlan[i];
    key[K_IVLAN] = p->inner_vlan[i];
    key[K_IPVER] = p->ip_version[i];
    key[K_HASH] = (int64_t)key_hash(key, vlan_key);
    out->side = side;
    out->t = p->ts[i];
    out->flags = p->tcp_flags[i];
    out->seq = p->seq[i];
    out->ack = p->ack[i];
    out->win = p->window[i];
    out->iplen = p->ip_len[i];
    out->proto = proto;
    /* UDP: Zeek sums the UDP length field minus the header, not the IP payload; ICMP: the
     * payload after the 8-byte header; other protocols: no payload size (Zeek's stay 0) */
    if (proto == 17)
        out->plen = p->udp_len[i] > 8 ? p->udp_len[i] - 8 : 0;
    else if (proto == 6 || is_icmp(proto))
        out->plen = p->payload_len[i];
    else
        out->plen = 0;
    out->kind = PK_PACKET;
    out->etype = out->ecode = out->ehi = out->elo = 0;
    if (p->tunnel_type[i] == TUNNEL_ICMP_QUOTE) {
        const uint8_t *ea = p->tunnel_src_ip + i * 16;
        out->kind = PK_ICMP_REPORT;
        out->etype = p->tunnel_src_port[i];
        out->ecode = p->tunnel_dst_port[i];
        out->ehi = (int64_t)be64(ea);
        out->elo = (int64_t)be64(ea + 8);
    } else if (p->bad_checksum[i]) {
        out->kind = PK_BAD_CHECKSUM;
    }
    out->parent = p->parent[i];
    out->encloses = p->encloses[i];
    return 1;
}

/* Tunnels, for a whole batch: the parent of a flow packet inside a tunnel (tunnel_depth d > 0)
 * is the packet that carried it, the row just before it of the same record at depth d - 1
 * (decode writes a record's rows consecutively, outermost first): parent[i] is that row's
 * connection key hash, and that row encloses[] a flow packet. Zeek's tunnel_parents is the
 * set of the connections so found (docs/schema.md). An inner row whose carrier is not a flow
 * packet of the batch (a packet filter dropped it) gets no parent. */
static inline void
tunnel_links(const packet_cols_t *p, Py_ssize_t n, int vlan_key, uint64_t *parent, uint8_t *encloses)
{
    flow_pkt_t inner, outer;
    for (Py_ssize_t i = 0; i < n; i++) {
        parent[i] = 0;
        encloses[i] = 0;
    }
    /* rows at depth 0 (every row of a capture without tunnels) are nobody's inner packet: only
     * an inner row and the row before it are made flow packets, so traffic without tunnels
     * pays one comparison per row, not a second key hash */
    for (Py_ssize_t i = 1; i < n; i++) {
        if (p->tunnel_depth[i] == 0 || p->index[i - 1] != p->index[i] ||
            p->tunnel_depth[i - 1] + 1 != p->tunnel_depth[i])
            continue;
        /* an ICMP error's quoted header is no packet of a connection: neither carried nor carrier */
        if (!flow_packet(p, i, vlan_key, &inner) || inner.kind == PK_ICMP_REPORT)
            continue;
        if (!flow_packet(p, i - 1, vlan_key, &outer) || outer.kind == PK_ICMP_REPORT)
            continue;
        parent[i] = (uint64_t)outer.key[K_HASH];
        encloses[i - 1] = 1;
    }
}

/* Zeek's likely_server_ports: the server ports its default scripts register
 * (Analyzer::register_for_ports and PacketAnalyzer::register_for_ports); fixed, whatever
 * the traffic. Listed and explained in docs/semantics.md. */
static const uint16_t TCP_SERVER_PORTS[] = {
    21, 2811,                                           /* ftp */
    22,                                                 /* ssh */
    25, 587,                                            /* smtp */
    53,                                                 /* dns */
    80, 81, 631, 1080, 3128, 8000, 8080, 8888,          /* http */
    79,                                                 /* finger */
    88,                                                 /* kerberos */
    135,                                                /* dce-rpc endpoint mapper */
    139, 445,                                           /* smb */
    143,                                                /* imap */
    6666, 6667, 6668, 6669,                             /* irc */
    389, 3268,                                          /* ldap */
    443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223, /* ssl/tls */
    502,                                                /* modbus */
    1883,                                               /* mqtt */
    1434, 3306,                                         /* mysql */
    514,                                                /* syslog over tcp */
    3389,                                               /* rdp */
    5222, 5269,                                         /* xmpp */
    5432,                                               /* postgresql */
    6379,                                               /* redis */
    20000,                                              /* dnp3 */
};

static const uint16_t UDP_SERVER_PORTS[] = {
    53, 137, 5353, 5355, /* dns, netbios-ns, mdns, llmnr */
    67, 4011,            /* dhcp server ports (68 is registered as a client port: not likely) */
    88,                  /* kerberos */
    123,                 /* ntp */
    161, 162,            /* snmp */
    389,                 /* ldap (cldap) */
    443,                 /* quic */
    514,                 /* syslog */
    1812,                /* radius */
    3389,                /* rdp over udp */
    3544,                /* teredo */
    4789,                /* vxlan */
    5060,                /* sip */
    5072,                /* ayiya */
    6081,                /* geneve */
    2123, 2152,          /* gtp */
    20000,               /* dnp3 */
};

#define N_TCP_SERVER_PORTS ((int)(sizeof TCP_SERVER_PORTS / sizeof TCP_SERVER_PORTS[0]))
#define N_UDP_SERVER_PORTS ((int)(sizeof UDP_SERVER_PORTS / sizeof UDP_SERVER_PORTS[0]))

/* Bit per port: bit 0 likely TCP server port, bit 1 likely UDP server port. */
static uint8_t likely_table[65536];

static void
init_likely_table(void)
{
    for (int j = 0; j < N_TCP_SERVER_PORTS; j++)
        likely_table[TCP_SERVER_PORTS[j]] |= 1;
    for (int j = 0; j < N_UDP_SERVER_PORTS; j++)
        likely_table[UDP_SERVER_PORTS[j]] |= 2;
}

static inline int
likely_server_port(int64_t port, int64_t proto)
{
    return (likely_table[port & 0xFFFF] & (proto == 6 ? 1 : 2)) != 0;
}

/* Broadcast (255.255.255.255) or multicast (224.0.0.0/4, ff00::/8): Zeek does not flip
 * connections sent to such addresses, whatever the ports. */
static inline int
group_address(uint64_t hi, uint64_t lo)
{
    if (hi == 0 && (lo >> 32) == 0xFFFF) {
        uint64_t a4 = lo & 0xFFFFFFFFULL;
        return a4 == 0xFFFFFFFFULL || (a4 >> 28) == 0xE;
    }
    return (hi >> 56) == 0xFF;
}

/* Orientation of a new connection: 1 when the packet's sender is the responder. The sender
 * of a SYN without ACK originates; anything else (a SYN-ACK included) follows Zeek's
 * likely-server-port heuristic (TCPAnalyzer::WantConnection): flipped when the source port
 * is a likely server port and the destination port is not, or (TCP, no SYN) both are and
 * the source port is the lower one. Never for traffic sent to a group address. A SYN-ACK
 * left unflipped keeps its sender as originator (a stealth scan's answer) unless an ACK or
 * data follows: late_flip in _conn.h. */
static inline int
flips(const int64_t *key, int64_t side, int64_t proto, int64_t flags)
{
    int64_t sport = key[K_APORT + side], dport = key[K_APORT + 1 - side];
    int src_likely = likely_server_port(sport, proto);
    int dst_likely = likely_server_port(dport, proto);
    int64_t dhi = key[side ? K_AHI : K_BHI], dlo = key[side ? K_ALO : K_BLO];
    if (group_address((uint64_t)dhi, (uint64_t)dlo))
        src_likely = 0;
    if (!has_ports(proto))
        return 0; /* Zeek never flips ICMP or unknown_transport connections */
    if (proto != 6)
        return src_likely && !dst_likely;
    if ((flags & TH_SYN) != 0 && (flags & TH_ACK) == 0)
        return 0; /* a SYN's sender originates */
    if (!src_likely)
        return 0; /* a SYN-ACK too: _conn.h flips it later if an ACK or data follows */
    if (dst_likely) /* both likely: the lower port serves, but a SYN-ACK keeps its sender */
        return (flags & TH_SYN) == 0 && sport < dport;
    return 1;
}

#endif
