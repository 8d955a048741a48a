/* Payload-based service identification, after Zeek's dynamic protocol detection.
 *
 * Zeek names a connection's service only once an analyzer confirms the protocol: a
 * signature (scripts/base/protocols/<proto>/dpd.sig) or a registered port starts the
 * analyzer, and the analyzer parses the payload before it says "confirmed". flowkit
 * keeps the confirmation part and never uses the port: each rule below is the dpd.sig
 * pattern tightened by what the analyzer checks before confirming (docs/services.md).
 * Protocols that Zeek confirms only after hearing both sides (a reply to a request)
 * collect one evidence bit per side and are named when both are there.
 *
 * Pure functions over one packet's captured payload bytes: no allocation, every read
 * bounded by `len`. The per-connection state is svc_t (two 64-bit words); a caller
 * stops calling once svc_settled() says nothing more can be learnt, so only the first
 * few payload packets of each direction are ever read (control channels that announce
 * data connections, FTP and IRC, are read to the end).
 */
#ifndef FLOWKIT_IDENTIFY_H
#define FLOWKIT_IDENTIFY_H

#include <stdint.h>
#include <string.h>

/* Services (bit numbers of svc_t.confirmed); SVC_NAMES gives Zeek's names, sorted. */
#define SVC_LIST(X)                                                                                            \
    X(AYIYA, "ayiya") X(DCE_RPC, "dce_rpc") X(DHCP, "dhcp") X(DNS, "dns") X(DTLS, "dtls") X(FTP, "ftp")          \
    X(FTP_DATA, "ftp-data") X(GENEVE, "geneve") X(GTPV1, "gtpv1") X(HTTP, "http") X(IMAP, "imap") X(IRC, "irc") \
    X(IRC_DCC, "irc-dcc-data") X(KRB, "krb") X(KRB_TCP, "krb_tcp") X(MODBUS, "modbus") X(MYSQL, "mysql")        \
    X(NTP, "ntp") X(POP3, "pop3") X(QUIC, "quic") X(RDP, "rdp") X(REDIS, "redis") X(SMB, "smb")                 \
    X(SMTP, "smtp") X(SSH, "ssh") X(SSL, "ssl") X(TEREDO, "teredo") X(VXLAN, "vxlan") X(XMPP, "xmpp")

#define SVC_ENUM(id, name) SV_##id,
enum { SVC_LIST(SVC_ENUM) SV_COUNT };
#undef SVC_ENUM

/* Evidence bits: one side of a protocol that needs both (o = originator, r = responder). */
enum {
    E_HTTP_O, E_HTTP_R, E_SSH_O, E_SSH_R, E_FTP_USER, E_FTP_GREET, E_FTP_LOGIN, E_SMTP_O, E_SMTP_R,
    E_POP3_O, E_POP3_R, E_IMAP_O, E_IMAP_R, E_IRC_NICK, E_IRC_USER, E_IRC_R, E_MYSQL_R, E_MYSQL_O,
    E_REDIS_O, E_REDIS_R, E_RDP_O, E_RDP_R, E_CONNECT, E_TEREDO_O, E_TEREDO_R, E_FTP_MULTI, E_FTP_BAD, E_COUNT
};

#define SVC_LOOK 6        /* payload packets read per direction */
#define SVC_LOOK_TLS 16   /* ... while a confirmed protocol may still switch to TLS (STARTTLS, CONNECT) */
#define SVC_SCAN 2048     /* bytes of one payload scanned for text lines */

/* State of one connection, 16 bytes, zero at the start. */
typedef struct {
    uint64_t bits;  /* confirmed services (low 32) | evidence (high 32) */
    uint64_t count; /* payload packets read: originator (bits 0-15), responder (16-31) */
} svc_t;

/* A data connection announced on a control channel: the responder address (16 bytes,
 * IPv4 as ::ffff:a.b.c.d; all zero = the control connection's `peer` address) and port. */
typedef struct {
    int service; /* SV_FTP_DATA or SV_IRC_DCC; -1 when nothing was announced */
    int peer;    /* address is the control connection's originator (0) or responder (1) when not given */
    uint8_t addr[16];
    int has_addr;
    uint16_t port;
} svc_expect_t;

#define BIT(s) ((uint64_t)1 << (s))
#define EV(e) ((uint64_t)1 << (32 + (e)))
#define HAS(st, e) (((st)->bits & EV(e)) != 0)
/* control channels: read to the end, they announce data connections (svc_expect_t) */
#define SVC_CONTROL (((uint64_t)1 << SV_FTP) | ((uint64_t)1 << SV_IRC))
/* svc_t.bits of a connection that is, or is becoming, a control channel (a greeting or a
 * login seen): it may still announce data connections */
#define SVC_ANNOUNCER                                                                                  \
    (SVC_CONTROL | ((uint64_t)1 << (32 + E_FTP_GREET)) | ((uint64_t)1 << (32 + E_FTP_USER)) |           \
     ((uint64_t)1 << (32 + E_IRC_NICK)) | ((uint64_t)1 << (32 + E_IRC_USER)) | ((uint64_t)1 << (32 + E_IRC_R)))

static inline uint32_t svc_confirmed(const svc_t *s) { return (uint32_t)(s->bits & 0xFFFFFFFFu); }

static inline int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive: does p[0..len) start with the lower-case literal w? */
static inline int
starts_ci(const uint8_t *p, int64_t len, const char *w)
{
    int64_t n = (int64_t)strlen(w);
    if (len < n)
        return 0;
    for (int64_t i = 0; i < n; i++)
        if (lower(p[i]) != w[i])
            return 0;
    return 1;
}

static inline int is_digit(int c) { return c >= '0' && c <= '9'; }
static inline int is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t rd24(const uint8_t *p) { return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2]; }
static inline uint32_t rd32(const uint8_t *p) { return ((uint32_t)rd16(p) << 16) | rd16(p + 2); }

/* Copy a host name of n bytes (printable ASCII, no spaces) into out, NUL-terminated;
 * 0 (nothing copied) when it is empty, does not fit or is not a name. */
static int
copy_name(const uint8_t *p, int64_t n, char *out, int max)
{
    if (n <= 0 || n >= max)
        return 0;
    for (int64_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7F)
            return 0;
    memcpy(out, p, (size_t)n);
    out[n] = 0;
    return 1;
}

/* ---- TLS / DTLS ---- */

/* dpd_tls_client / dpd_tls_server: a handshake record (version 3.0-3.3) carrying a
 * ClientHello (1) or ServerHello (2) whose own version is 3.x or a draft 0x7Fxx. */
static int
tls_hello(const uint8_t *p, int64_t len)
{
    int64_t o = 0;
    if (len >= 7 && p[0] == 0x15 && p[1] == 3 && p[2] <= 3) /* a leading alert record (server side) */
        o = 5 + rd16(p + 3);
    if (len < o + 11 || p[o] != 0x16 || p[o + 1] != 3 || p[o + 2] > 3)
        return 0;
    int type = p[o + 5];
    if (rd16(p + o + 3) < 4 || (type != 1 && type != 2))
        return 0;
    int v0 = p[o + 9], v1 = p[o + 10];
    if (type == 1)
        return v0 == 3 && v1 <= 3 ? 1 : 0;
    return (v0 == 3 && v1 <= 4) || (v0 == 0x7F && v1 <= 0x50) ? 2 : 0;
}

/* The server_name extension of a ClientHello starting at p (record header included). */
static int
tls_sni(const uint8_t *p, int64_t len, char *out, int max)
{
    int64_t end = 5 + rd16(p + 3), o = 5 + 4 + 2 + 32; /* record, handshake header, version, random */
    if (end > len)
        end = len;
    if (o + 1 > end)
        return 0;
    o += 1 + p[o]; /* session id */
    if (o + 2 > end)
        return 0;
    o += 2 + rd16(p + o); /* cipher suites */
    if (o + 1 > end)
        return 0;
    o += 1 + p[o]; /* compression methods */
    if (o + 2 > end)
        return 0;
    int64_t ext_end = o + 2 + rd16(p + o);
    o += 2;
    if (ext_end > end)
        ext_end = end;
    while (o + 4 <= ext_end) {
        uint32_t type = rd16(p + o), elen = rd16(p + o + 2);
        o += 4;
        if (type == 0) {
            /* server_name_list length, name type 0 (host_name), name length, name */
            if (o + 5 > ext_end || p[o + 2] != 0)
                return 0;
            int64_t n = rd16(p + o + 3);
            if (o + 5 + n > ext_end || n == 0)
                return 0;
            return copy_name(p + o + 5, n, out, max);
        }
        o += elen;
    }
    return 0;
}

/* dpd_dtls_client, widened to the server's HelloVerifyRequest (3) and ServerHello (2):
 * a handshake record of DTLS 1.0/1.2, epoch 0, whose handshake version is DTLS too. */
static int
dtls_hello(const uint8_t *p, int64_t len)
{
    if (len < 27 || p[0] != 0x16 || p[1] != 0xFE || (p[2] != 0xFF && p[2] != 0xFD) || p[3] || p[4])
        return 0;
    int type = p[13];
    if (type != 1 && type != 2 && type != 3)
        return 0;
    return p[25] == 0xFE && (p[26] == 0xFF || p[26] == 0xFD);
}

/* ---- text protocols ---- */

static const char *const HTTP_METHODS[] = {"get ", "post ", "head ", "put ", "delete ", "options ", "connect ",
                                           "patch ", "trace ", "propfind ", "proppatch ", "mkcol ", "copy ",
                                           "move ", "lock ", "unlock ", "report ", "search ", NULL};

/* A request line: METHOD SP target SP HTTP/d (methods upper case, as Zeek's HTTP analyzer
 * requires for a valid request); returns the method's index + 1. */
static int
http_request(const uint8_t *p, int64_t len)
{
    int64_t o = 0;
    while (o < len && o < 16 && is_space(p[o]))
        o++;
    if (o >= len || p[o] < 'C' || p[o] > 'U')
        return 0; /* no method starts otherwise: most payloads leave here */
    for (int m = 0; HTTP_METHODS[m]; m++) {
        int64_t n = (int64_t)strlen(HTTP_METHODS[m]);
        if (len - o < n || !starts_ci(p + o, len - o, HTTP_METHODS[m]))
            continue;
        for (int64_t i = 0; i < n - 1; i++)
            if (p[o + i] < 'A' || p[o + i] > 'Z')
                return 0;
        /* the target, then " HTTP/" on the same line */
        int64_t lim = len < SVC_SCAN ? len : SVC_SCAN;
        for (int64_t i = o + n; i + 6 <= lim && p[i] != '\r' && p[i] != '\n'; i++)
            if (p[i] == ' ' && memcmp(p + i + 1, "HTTP/", 5) == 0)
                return m + 1;
        return 0;
    }
    return 0;
}

/* The Host header of a request (its value up to the end of the line). */
static int
http_host(const uint8_t *p, int64_t len, char *out, int max)
{
    int64_t lim = len < SVC_SCAN ? len : SVC_SCAN;
    for (int64_t i = 0; i + 1 < lim; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\r' || p[i + 1] == '\n')
            return 0; /* end of the headers */
        if (starts_ci(p + i + 1, lim - i - 1, "host:")) {
            int64_t v = i + 6;
            while (v < lim && (p[v] == ' ' || p[v] == '\t'))
                v++;
            int64_t e = v;
            while (e < lim && p[e] != '\r' && p[e] != '\n')
                e++;
            while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'))
                e--;
            if (e == lim)
                return 0; /* cut by the capture */
            return copy_name(p + v, e - v, out, max);
        }
    }
    return 0;
}

/* Next text line of the first SVC_SCAN bytes at *pos: 1 with the line and its length set, 0 at the end.
 * Only lines ending in CR or LF count: a line cut by the packet could match a shorter
 * pattern than the one the sender wrote. */
static inline int
next_line(const uint8_t *p, int64_t len, int64_t *pos, const uint8_t **line, int64_t *n)
{
    int64_t lim = len < SVC_SCAN ? len : SVC_SCAN;
    for (int64_t s = *pos, i = *pos; i < lim; i++) {
        if (p[i] != '\n' && p[i] != '\r')
            continue;
        *pos = i + 1;
        if (i > s) {
            *line = p + s;
            *n = i - s;
            return 1;
        }
        s = i + 1;
    }
    *pos = lim;
    return 0;
}

/* A reply line "ddd" followed by a space, '-' or the end: its code, or -1. */
static int
reply_code(const uint8_t *l, int64_t n)
{
    int64_t o = 0;
    while (o < n && l[o] == ' ')
        o++;
    if (n - o < 3 || !is_digit(l[o]) || !is_digit(l[o + 1]) || !is_digit(l[o + 2]))
        return -1;
    if (n - o > 3 && is_digit(l[o + 3]))
        return -1;
    return (l[o] - '0') * 100 + (l[o + 1] - '0') * 10 + (l[o + 2] - '0');
}

/* Parse "h1,h2,h3,h4,p1,p2" (FTP PORT / 227) starting at l[o]. */
static int
ftp_hostport(const uint8_t *l, int64_t n, int64_t o, uint8_t addr[16], uint16_t *port)
{
    uint32_t v[6];
    for (int k = 0; k < 6; k++) {
        while (o < n && l[o] == ' ')
            o++;
        if (o >= n || !is_digit(l[o]))
            return 0;
        uint32_t x = 0;
        int d = 0;
        while (o < n && is_digit(l[o]) && d < 4)
            x = x * 10 + (uint32_t)(l[o++] - '0'), d++;
        if (x > 255)
            return 0;
        v[k] = x;
        if (k < 5) {
            if (o >= n || l[o] != ',')
                return 0;
            o++;
        }
    }
    memset(addr, 0, 16);
    addr[10] = addr[11] = 0xFF;
    for (int k = 0; k < 4; k++)
        addr[12 + k] = (uint8_t)v[k];
    *port = (uint16_t)(v[4] * 256 + v[5]);
    return 1;
}

/* A decimal port at l[o] up to a delimiter d. */
static int
dec_port(const uint8_t *l, int64_t n, int64_t *o, int d, uint16_t *port)
{
    uint32_t x = 0;
    int digits = 0;
    while (*o < n && is_digit(l[*o]) && digits < 6)
        x = x * 10 + (uint32_t)(l[(*o)++] - '0'), digits++;
    if (!digits || x == 0 || x > 65535 || *o >= n || l[*o] != d)
        return 0;
    *port = (uint16_t)x;
    return 1;
}

/* Textual IPv4 "a.b.c.d" into a mapped address (EPRT |1|...|). */
static int
ipv4_text(const uint8_t *l, int64_t n, int64_t *o, uint8_t addr[16])
{
    memset(addr, 0, 16);
    addr[10] = addr[11] = 0xFF;
    for (int k = 0; k < 4; k++) {
        uint32_t x = 0;
        int d = 0;
        while (*o < n && is_digit(l[*o]) && d < 4)
            x = x * 10 + (uint32_t)(l[(*o)++] - '0'), d++;
        if (!d || x > 255)
            return 0;
        addr[12 + k] = (uint8_t)x;
        if (k < 3) {
            if (*o >= n || l[*o] != '.')
                return 0;
            (*o)++;
        }
    }
    return 1;
}

static int
hexval(int c)
{
    c = lower(c);
    return is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Textual IPv6 (EPRT |2|...|), without embedded IPv4 forms. */
static int
ipv6_text(const uint8_t *l, int64_t n, int64_t *o, uint8_t addr[16])
{
    uint16_t g[8];
    int ng = 0, gap = -1;
    memset(addr, 0, 16);
    if (*o + 1 < n && l[*o] == ':' && l[*o + 1] == ':') {
        gap = 0;
        *o += 2;
    }
    while (*o < n && ng < 8 && hexval(l[*o]) >= 0) {
        uint32_t x = 0;
        int d = 0;
        while (*o < n && hexval(l[*o]) >= 0 && d < 5)
            x = x * 16 + (uint32_t)hexval(l[(*o)++]), d++;
        if (d > 4)
            return 0;
        g[ng++] = (uint16_t)x;
        if (*o + 1 < n && l[*o] == ':' && l[*o + 1] == ':' && gap < 0) {
            gap = ng;
            *o += 2;
        } else if (*o < n && l[*o] == ':') {
            (*o)++;
        } else {
            break;
        }
    }
    if (ng == 0 && gap < 0)
        return 0;
    int fill = gap < 0 ? 0 : 8 - ng;
    if ((gap < 0 && ng != 8) || fill < 0)
        return 0;
    int k = 0;
    for (int j = 0; j < ng; j++) {
        if (j == gap)
            k += fill;
        addr[2 * k] = (uint8_t)(g[j] >> 8);
        addr[2 * k + 1] = (uint8_t)g[j];
        k++;
    }
    return 1;
}

/* FTP's data-channel announcements, as Zeek's ftp analyzer scripts parse them:
 * PORT h,h,h,h,p,p and EPRT |af|addr|port| (client: the server connects to the client),
 * 227 (h,h,h,h,p,p) and 229 (|||port|) replies (server: the client connects to it). */
static int
ftp_expect(const uint8_t *l, int64_t n, int is_orig, svc_expect_t *ex)
{
    ex->has_addr = 0;
    if (is_orig && starts_ci(l, n, "port ")) {
        ex->has_addr = ftp_hostport(l, n, 5, ex->addr, &ex->port);
        ex->peer = 0;
        return ex->has_addr;
    }
    if (is_orig && starts_ci(l, n, "eprt ") && n > 8) {
        int64_t o = 5;
        int d = l[o++];
        if (o + 2 >= n || l[o + 1] != d)
            return 0;
        int af = l[o];
        o += 2;
        int ok = af == '1' ? ipv4_text(l, n, &o, ex->addr) : af == '2' ? ipv6_text(l, n, &o, ex->addr) : 0;
        if (!ok || o >= n || l[o] != d)
            return 0;
        o++;
        ex->peer = 0;
        ex->has_addr = dec_port(l, n, &o, d, &ex->port);
        return ex->has_addr;
    }
    int code = is_orig ? -1 : reply_code(l, n);
    if (code == 227) {
        for (int64_t o = 4; o < n; o++)
            if (is_digit(l[o]) && (l[o - 1] == '(' || l[o - 1] == ' ' || l[o - 1] == '=')) {
                if (ftp_hostport(l, n, o, ex->addr, &ex->port)) {
                    ex->peer = 1;
                    ex->has_addr = 1;
                    return 1;
                }
            }
        return 0;
    }
    if (code == 229) {
        for (int64_t o = 4; o + 4 < n; o++)
            if (l[o] == '(' && l[o + 1] == l[o + 2] && l[o + 2] == l[o + 3]) {
                int d = l[o + 1];
                int64_t q = o + 4;
                ex->peer = 1;
                ex->has_addr = 0;
                return dec_port(l, n, &q, d, &ex->port);
            }
    }
    return 0;
}

/* IRC DCC SEND: "PRIVMSG nick :\1DCC SEND name address port ...\1", the address a decimal
 * IPv4 number (what Zeek's irc analyzer parses for irc_dcc_message). */
static int
irc_dcc(const uint8_t *l, int64_t n, svc_expect_t *ex)
{
    int64_t i = 0;
    for (; i + 10 <= n; i++)
        if (l[i] == 1 && starts_ci(l + i + 1, n - i - 1, "dcc send "))
            break;
    if (i + 10 > n)
        return 0;
    int64_t o = i + 10;
    /* file name: quoted or one word */
    if (o < n && l[o] == '"') {
        o++;
        while (o < n && l[o] != '"')
            o++;
        o++;
    } else {
        while (o < n && l[o] != ' ')
            o++;
    }
    while (o < n && l[o] == ' ')
        o++;
    uint64_t a = 0;
    int d = 0;
    while (o < n && is_digit(l[o]) && d < 11)
        a = a * 10 + (uint64_t)(l[o++] - '0'), d++;
    if (!d || a > 0xFFFFFFFFu || o >= n || l[o] != ' ')
        return 0;
    while (o < n && l[o] == ' ')
        o++;
    uint32_t port = 0;
    d = 0;
    while (o < n && is_digit(l[o]) && d < 6)
        port = port * 10 + (uint32_t)(l[o++] - '0'), d++;
    if (!d || port == 0 || port > 65535 || (o < n && l[o] != ' ' && l[o] != 1))
        return 0;
    memset(ex->addr, 0, 16);
    ex->addr[10] = ex->addr[11] = 0xFF;
    ex->addr[12] = (uint8_t)(a >> 24), ex->addr[13] = (uint8_t)(a >> 16);
    ex->addr[14] = (uint8_t)(a >> 8), ex->addr[15] = (uint8_t)a;
    ex->has_addr = 1;
    ex->peer = 0;
    ex->port = (uint16_t)port;
    return 1;
}

/* IMAP client command: tag SP command (RFC 3501), for the commands a session starts with. */
static int
imap_command(const uint8_t *l, int64_t n)
{
    int64_t o = 0;
    while (o < n && o < 32 && l[o] > 0x20 && l[o] < 0x7F && l[o] != '(' && l[o] != ')' && l[o] != '{' &&
           l[o] != '*' && l[o] != '%' && l[o] != '"' && l[o] != '\\')
        o++;
    if (o == 0 || o >= n || l[o] != ' ')
        return 0;
    static const char *const cmds[] = {"capability", "login ", "starttls", "authenticate ", "id ", "noop",
                                       "logout", "select ", "list ", NULL};
    for (int k = 0; cmds[k]; k++)
        if (starts_ci(l + o + 1, n - o - 1, cmds[k]))
            return 1;
    return 0;
}

/* One text line of a connection's stream. */
static void
text_line(svc_t *s, const uint8_t *l, int64_t n, int is_orig, svc_expect_t *ex)
{
    if (is_orig) {
        if (starts_ci(l, n, "user "))
            s->bits |= EV(E_FTP_USER) | EV(E_IRC_USER);
        if (starts_ci(l, n, "nick "))
            s->bits |= EV(E_IRC_NICK);
        int64_t o = 0;
        while (o < n && is_space(l[o]))
            o++;
        if (starts_ci(l + o, n - o, "helo") || starts_ci(l + o, n - o, "ehlo"))
            s->bits |= EV(E_SMTP_O);
        if (starts_ci(l + o, n - o, "user ") || starts_ci(l + o, n - o, "apop ") || starts_ci(l + o, n - o, "capa") ||
            starts_ci(l + o, n - o, "auth") || starts_ci(l + o, n - o, "stls"))
            s->bits |= EV(E_POP3_O);
        if (imap_command(l, n))
            s->bits |= EV(E_IMAP_O);
    } else {
        int code = reply_code(l, n);
        if (HAS(s, E_FTP_GREET) && !HAS(s, E_FTP_MULTI) && l[0] != ' ' &&
            (code < 0 || (n > 3 && l[3] != ' ' && l[3] != '-') || code < 100))
            s->bits |= EV(E_FTP_BAD); /* Zeek's ftp analyzer: a reply without a valid code is a violation */
        if (code >= 100 && n > 3 && l[3] == '-')
            s->bits |= EV(E_FTP_MULTI); /* a multi-line reply: free text until "ddd " */
        else if (code >= 100)
            s->bits &= ~EV(E_FTP_MULTI);
        if (code == 220 || code == 120) {
            s->bits |= EV(E_FTP_GREET);
            if (code == 220)
                s->bits |= EV(E_SMTP_R);
        }
        if ((code == 230 || code == 331) && HAS(s, E_FTP_GREET))
            s->bits |= EV(E_FTP_LOGIN);
        if (starts_ci(l, n, "+ok"))
            s->bits |= EV(E_POP3_R);
        if (starts_ci(l, n, "* ok"))
            s->bits |= EV(E_IMAP_R);
        /* IRC numeric reply: optional ":prefix " then three digits and a space */
        int64_t o = 0;
        if (n > 0 && l[0] == ':') {
            while (o < n && l[o] != ' ')
                o++;
            o++;
        }
        if (o + 4 <= n && is_digit(l[o]) && is_digit(l[o + 1]) && is_digit(l[o + 2]) && l[o + 3] == ' ')
            s->bits |= EV(E_IRC_R);
    }
    if (ex->service < 0 && (s->bits & BIT(SV_FTP)) && ftp_expect(l, n, is_orig, ex))
        ex->service = SV_FTP_DATA;
    if (ex->service < 0 && (s->bits & BIT(SV_IRC)) && n > 12 && irc_dcc(l, n, ex))
        ex->service = SV_IRC_DCC;
}

/* MySQL initial handshake (server): 3-byte little-endian length, sequence 0, protocol 9 or
 * 10, a printable version string ending in NUL. */
static int
mysql_greeting(const uint8_t *p, int64_t len)
{
    if (len < 10)
        return 0;
    uint32_t plen = p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    if (plen + 4 != (uint64_t)len || p[3] != 0 || (p[4] != 10 && p[4] != 9))
        return 0;
    int64_t o = 5;
    while (o < len && p[o] >= 0x20 && p[o] < 0x7F)
        o++;
    return o > 5 && o < len && p[o] == 0;
}

/* The client's reply: a packet with sequence number 1 and a consistent length. */
static int
mysql_response(const uint8_t *p, int64_t len)
{
    if (len < 8)
        return 0;
    uint32_t plen = p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return plen + 4 <= (uint64_t)len && plen >= 4 && p[3] == 1;
}

/* RESP (Redis) from the client: an array of bulk strings "*N\r\n$L\r\n". */
static int
redis_client(const uint8_t *p, int64_t len)
{
    int64_t o = 1;
    if (len < 8 || p[0] != '*')
        return 0;
    while (o < len && is_digit(p[o]) && o < 8)
        o++;
    return o > 1 && o + 3 < len && p[o] == '\r' && p[o + 1] == '\n' && p[o + 2] == '$' && is_digit(p[o + 3]);
}

/* resp-serialized-server: a simple string/error/number line, or a typed length line. */
static int
redis_server(const uint8_t *p, int64_t len)
{
    if (len < 3)
        return 0;
    int64_t o = 1;
    if (p[0] == '-' || p[0] == '+' || p[0] == '_' || p[0] == ',') {
        while (o + 1 < len && p[o] != '\r' && p[o] != '\n')
            o++;
    } else if (memchr(":$*#(!=%`~>", p[0], 11)) {
        if (o < len && (p[o] == '+' || p[o] == '-'))
            o++;
        int64_t d = o;
        while (o < len && is_digit(p[o]))
            o++;
        if (o == d)
            return 0;
    } else {
        return 0;
    }
    return o + 1 < len && p[o] == '\r' && p[o + 1] == '\n';
}

/* XMPP: dpd_xmpp, an optional XML declaration then <stream:stream ... xmlns='jabber:. */
static int
xmpp_stream(const uint8_t *p, int64_t len)
{
    int64_t o = 0, lim = len < SVC_SCAN ? len : SVC_SCAN;
    if (starts_ci(p, lim, "<?xml")) {
        while (o + 1 < lim && !(p[o] == '?' && p[o + 1] == '>'))
            o++;
        o += 2;
    }
    while (o < lim && (p[o] == ' ' || p[o] == '\r' || p[o] == '\n'))
        o++;
    if (!starts_ci(p + o, lim - o, "<stream:stream "))
        return 0;
    for (int64_t i = o; i + 14 <= lim && p[i] != '>'; i++)
        if (memcmp(p + i, "xmlns='jabber:", 14) == 0 || memcmp(p + i, "xmlns=\"jabber:", 14) == 0)
            return 1;
    return 0;
}

/* RDP over TPKT/X.224: the client's Connection Request (0xE0) and the server's Connection
 * Confirm (0xD0), TPKT length equal to the payload (dpd_rdp_client / dpd_rdp_server). */
static int
rdp_tpkt(const uint8_t *p, int64_t len, int code)
{
    return len >= 11 && p[0] == 3 && p[1] == 0 && rd16(p + 2) == len && p[4] + 5 <= len && p[5] == code;
}

/* ---- binary protocols, one packet decides ---- */

/* Walk one DNS name at *o (labels or a compression pointer to an earlier offset). */
static int
dns_name(const uint8_t *p, int64_t len, int64_t *o)
{
    int64_t at = *o;
    for (int labels = 0; labels < 128; labels++) {
        if (at >= len)
            return 0;
        int c = p[at];
        if (c == 0) {
            *o = at + 1;
            return 1;
        }
        if ((c & 0xC0) == 0xC0) {
            if (at + 2 > len || ((c & 0x3F) << 8 | p[at + 1]) >= at)
                return 0;
            *o = at + 2;
            return 1;
        }
        if (c & 0xC0)
            return 0;
        at += 1 + c;
    }
    return 0;
}

/* A whole DNS message: header, then every question and record to exactly the end. */
static int
dns_message(const uint8_t *p, int64_t len)
{
    if (len < 17)
        return 0;
    int opcode = (p[2] >> 3) & 0xF, rcode = p[3] & 0xF;
    uint32_t qd = rd16(p + 4), an = rd16(p + 6), ns = rd16(p + 8), ar = rd16(p + 10);
    if ((opcode != 0 && opcode != 1 && opcode != 2 && opcode != 4 && opcode != 5) || rcode > 10 || (p[3] & 0x40))
        return 0;
    if (qd > 16 || an + ns + ar > 512 || qd + an + ns + ar == 0)
        return 0;
    int64_t o = 12;
    for (uint32_t k = 0; k < qd; k++) {
        if (!dns_name(p, len, &o) || o + 4 > len)
            return 0;
        uint32_t cls = rd16(p + o + 2) & 0x7FFF; /* mDNS sets the top bit */
        if (rd16(p + o) == 0 || (cls != 1 && cls != 3 && cls != 4 && cls != 254 && cls != 255))
            return 0;
        o += 4;
    }
    for (uint32_t k = 0; k < an + ns + ar; k++) {
        if (!dns_name(p, len, &o) || o + 10 > len)
            return 0;
        o += 10 + rd16(p + o + 8);
        if (o > len)
            return 0;
    }
    return o == len;
}

/* NTP (RFC 5905): 48-byte header (plus a MAC); version 1-4, a mode 1-5 with a consistent
 * stratum, poll and precision, and a timestamp. */
static int
ntp_packet(const uint8_t *p, int64_t len)
{
    if (len != 48 && len != 68 && len != 72) /* the header, or with a key id and MD5 / SHA-1 MAC */
        return 0;
    int version = (p[0] >> 3) & 7, mode = p[0] & 7, stratum = p[1];
    if (version < 1 || version > 4 || mode < 1 || mode > 5 || stratum > 16 || (int8_t)p[2] > 17 ||
        (int8_t)p[2] < -1 || (int8_t)p[3] > 0 || (int8_t)p[3] < -32)
        return 0;
    if (mode == 4 && (stratum == 0 || rd32(p + 40) == 0))
        return stratum == 0 && (p[0] >> 6) == 3; /* a kiss-o'-death reply: alarm leap, stratum 0 */
    return rd32(p + 40) != 0 || rd32(p + 44) != 0;
}

/* DHCP / BOOTP (RFC 2131): op 1 or 2, Ethernet-sized hardware address, the magic cookie. */
static int
dhcp_packet(const uint8_t *p, int64_t len)
{
    return len >= 240 && (p[0] == 1 || p[0] == 2) && p[2] <= 16 && p[236] == 0x63 && p[237] == 0x82 &&
           p[238] == 0x53 && p[239] == 0x63;
}

static int
varint(const uint8_t *p, int64_t len, int64_t *o, uint64_t *v)
{
    if (*o >= len)
        return 0;
    int n = 1 << (p[*o] >> 6);
    if (*o + n > len)
        return 0;
    uint64_t x = p[*o] & 0x3F;
    for (int k = 1; k < n; k++)
        x = (x << 8) | p[*o + k];
    *o += n;
    *v = x;
    return 1;
}

/* QUIC Initial (RFC 9000 / 9369): dpd_quic_initial / dpd_quic_v2_initial, then connection
 * ids of at most 20 bytes, a token and a length that fit the datagram. */
static int
quic_initial(const uint8_t *p, int64_t len)
{
    if (len < 20)
        return 0;
    uint32_t v = rd32(p + 1);
    if (!((v == 1 && (p[0] & 0xF0) == 0xC0) || (v == 0x6b3343cf && (p[0] & 0xF0) == 0xD0)))
        return 0;
    int64_t o = 5;
    for (int k = 0; k < 2; k++) {
        if (o >= len || p[o] > 20)
            return 0;
        o += 1 + p[o];
    }
    uint64_t token, length;
    if (!varint(p, len, &o, &token) || (uint64_t)(len - o) < token)
        return 0;
    o += (int64_t)token;
    return varint(p, len, &o, &length) && length >= 20 && length <= (uint64_t)(len - o);
}

/* Kerberos (RFC 4120): an AS/TGS request or reply or KRB-ERROR, whose body is a SEQUENCE
 * starting with pvno 5 ([0] or [1] INTEGER 5), as dpd_krb_udp. */
static int
krb_message(const uint8_t *p, int64_t len)
{
    if (len < 12 || (p[0] != 0x6A && p[0] != 0x6B && p[0] != 0x6C && p[0] != 0x6D && p[0] != 0x7E))
        return 0;
    int64_t o = 1;
    for (int k = 0; k < 2; k++) { /* application tag length, then SEQUENCE tag and length */
        if (k == 1) {
            if (o >= len || p[o] != 0x30)
                return 0;
            o++;
        }
        if (o >= len)
            return 0;
        o += p[o] & 0x80 ? 1 + (p[o] & 0x7F) : 1;
    }
    return o + 5 <= len && (p[o] == 0xA0 || p[o] == 0xA1) && p[o + 1] == 3 && p[o + 2] == 2 && p[o + 3] == 1 &&
           p[o + 4] == 5;
}

/* Modbus/TCP: MBAP header with protocol id 0, a length matching the payload, and a known
 * function code (an exception response sets the top bit). An LDAP message with a 4-byte BER
 * length (30 84 00 00 LL LL 02 01 ...) has that shape too: it is not Modbus. */
static int
modbus_adu(const uint8_t *p, int64_t len)
{
    if (len < 8 || p[2] || p[3] || rd16(p + 4) + 6 != len)
        return 0;
    if (p[0] == 0x30 && p[1] == 0x84 && p[6] == 0x02)
        return 0;
    int fc = p[7] & 0x7F;
    return (fc >= 1 && fc <= 8) || (fc >= 11 && fc <= 17) || (fc >= 20 && fc <= 24) || fc == 43;
}

/* Inner packet of a tunnel: an IPv4 or IPv6 header whose length fits the captured bytes' promise. */
static int
inner_ip(const uint8_t *p, int64_t len)
{
    if (len >= 20 && (p[0] >> 4) == 4 && (p[0] & 0xF) >= 5)
        return rd16(p + 2) >= (uint32_t)(p[0] & 0xF) * 4 && p[8] != 0;
    if (len >= 40 && (p[0] >> 4) == 6)
        return 1;
    return 0;
}

/* Inner Ethernet frame: an ethertype flowkit would decode (IP, ARP, VLAN). */
static int
inner_ether(const uint8_t *p, int64_t len)
{
    if (len < 14)
        return 0;
    uint32_t et = rd16(p + 12);
    return et == 0x0800 || et == 0x86DD || et == 0x0806 || et == 0x8100 || et == 0x88A8;
}

/* VXLAN (RFC 7348): flags 0x08 (VNI present), reserved bytes zero, an Ethernet frame. Also the
 * VXLAN-GPE header (draft-ietf-nvo3-vxlan-gpe) that some senders use on 4789: flag P (0x04) and
 * next protocol 3 (Ethernet) in the last reserved byte; Zeek decapsulates both (only the I flag
 * is checked) and so does flowkit's decoder. */
static int
vxlan_packet(const uint8_t *p, int64_t len)
{
    if (len < 8 + 14 || !(p[0] & 0x08) || p[1] || p[2] || p[7])
        return 0;
    int plain = (p[0] & 0xF7) == 0 && !p[3];
    int gpe_ether = (p[0] & 0xF3) == 0 && (p[0] & 0x04) && p[3] == 3;
    return (plain || gpe_ether) && inner_ether(p + 8, len - 8);
}

/* Geneve (RFC 8926): version 0, reserved bits and byte zero, the options inside the
 * packet, a protocol flowkit knows; the inner packet is checked when it was captured
 * (Zeek confirms on the header: a capture cut after it still names geneve). */
static int
geneve_packet(const uint8_t *p, int64_t len)
{
    if (len < 8 || (p[0] >> 6) != 0 || (p[1] & 0x3F) || p[7])
        return 0;
    int64_t o = 8 + (int64_t)(p[0] & 0x3F) * 4;
    uint32_t proto = rd16(p + 2);
    if (o > len)
        return 0;
    if (proto == 0x6558)
        return o == len || inner_ether(p + o, len - o);
    if (proto == 0x0800 || proto == 0x86DD)
        return o == len || inner_ip(p + o, len - o);
    return proto == 0x0806 && len - o >= 8 && rd16(p + o) == 1 && rd16(p + o + 2) == 0x0800; /* ARP */
}

/* GTPv1-U (3GPP TS 29.281): version 1, protocol type GTP, a length matching the payload;
 * a G-PDU carrying IP, or an echo request/reply. */
static int
gtpv1_packet(const uint8_t *p, int64_t len)
{
    if (len < 8 || (p[0] & 0xF0) != 0x30 || rd16(p + 2) + 8 != len)
        return 0;
    if (p[1] == 1 || p[1] == 2)
        return 1;
    if (p[1] != 0xFF)
        return 0;
    int64_t o = p[0] & 0x07 ? 12 : 8;
    if ((p[0] & 0x04) && o <= len) { /* extension headers: length in 4-byte units, then next type */
        for (int k = 0; k < 8 && p[o - 1]; k++) {
            if (o >= len || p[o] == 0)
                return 0;
            o += 4 * p[o];
            if (o > len)
                return 0;
        }
    }
    return o <= len && inner_ip(p + o, len - o);
}

/* Teredo (RFC 4380): optional authentication (0x0001) and origin indication (0x0000)
 * headers, then an IPv6 packet whose payload fits the datagram (Zeek accepts bytes after
 * it: its teredo_bubble_with_payload test). */
static int
teredo_packet(const uint8_t *p, int64_t len)
{
    int64_t o = 0;
    if (len >= 13 && p[0] == 0 && p[1] == 1) {
        o = 13 + p[2] + p[3];
        if (o > len)
            return 0;
    }
    if (o + 8 <= len && p[o] == 0 && p[o + 1] == 0)
        o += 8;
    return o + 40 <= len && (p[o] >> 4) == 6 && rd16(p + o + 4) + 40 <= len - o && p[o + 8] != 0xFF;
}

/* AYIYA: dpd_ayiya (authentication method / opcode 0x11 forward, next header 41) and a
 * header (identity and signature sizes from its first bytes) followed by IPv6. */
static int
ayiya_packet(const uint8_t *p, int64_t len)
{
    if (len < 8 || p[2] != 0x11 || p[3] != 0x29)
        return 0;
    int64_t o = 8 + (1 << (p[0] >> 4)) + 4 * (p[1] >> 4);
    return o + 40 <= len && (p[o] >> 4) == 6;
}

/* SMB over NetBIOS session service / direct TCP: dpd_smb (and the SMB3 transform header). */
static int
smb_packet(const uint8_t *p, int64_t len)
{
    return len >= 8 && p[0] == 0 && (p[4] == 0xFF || p[4] == 0xFE || p[4] == 0xFD) && p[5] == 'S' && p[6] == 'M' &&
           p[7] == 'B';
}

/* DCE/RPC connection-oriented PDU: dpd_dce_rpc plus a fragment length that fits. */
static int
dce_rpc_packet(const uint8_t *p, int64_t len)
{
    if (len < 16 || p[0] != 5 || p[1] > 1 || p[2] > 0x13 || (p[3] & 0x03) != 0x03)
        return 0;
    uint32_t frag = p[4] & 0x10 ? (uint32_t)p[8] | ((uint32_t)p[9] << 8) : rd16(p + 8);
    return frag >= 16 && frag <= (uint64_t)len;
}

/* ---- the rule set ---- */

/* Evidence pairs that confirm a service once both sides are there. */
static inline void
pairs(svc_t *s)
{
    uint64_t b = s->bits;
#define BOTH(a, c, sv) if ((b & EV(a)) && (b & EV(c))) b |= BIT(sv);
    BOTH(E_SSH_O, E_SSH_R, SV_SSH)
    BOTH(E_SMTP_O, E_SMTP_R, SV_SMTP)
    BOTH(E_POP3_O, E_POP3_R, SV_POP3)
    BOTH(E_IMAP_O, E_IMAP_R, SV_IMAP)
    BOTH(E_MYSQL_R, E_MYSQL_O, SV_MYSQL)
    BOTH(E_REDIS_O, E_REDIS_R, SV_REDIS)
    BOTH(E_RDP_O, E_RDP_R, SV_RDP)
#undef BOTH
    if (b & EV(E_HTTP_O))
        b |= BIT(SV_HTTP); /* a whole request line: Zeek's baselines name http when the reply never came */
    if ((b & EV(E_FTP_USER)) && (b & EV(E_FTP_LOGIN)))
        b |= BIT(SV_FTP);
    if (b & EV(E_FTP_BAD))
        b &= ~BIT(SV_FTP); /* Zeek removes a service whose analyzer reported a violation */
    if ((b & EV(E_TEREDO_O)) && (b & EV(E_TEREDO_R)))
        b |= BIT(SV_TEREDO); /* Zeek's delay_teredo_confirmation: valid packets both ways */
    if ((b & EV(E_IRC_NICK)) && (b & EV(E_IRC_USER)) && (b & EV(E_IRC_R)))
        b |= BIT(SV_IRC);
    s->bits = b;
}

/* Whether reading more payload of this connection can change anything: a control
 * channel (FTP, IRC) is read to the end; a protocol that may switch to TLS (STARTTLS,
 * HTTP CONNECT) until TLS shows or SVC_LOOK_TLS packets per side; any other confirmed
 * service ends the reading; otherwise SVC_LOOK payload packets per side (a side that
 * has not spoken yet may still answer late, after many packets of the other). */
static inline int
svc_settled(const svc_t *s)
{
    uint32_t c = svc_confirmed(s);
    if (c & (((uint32_t)1 << SV_FTP) | ((uint32_t)1 << SV_IRC)))
        return 0;
    int no = (int)(s->count & 0xFFFF), nr = (int)((s->count >> 16) & 0xFFFF);
    uint32_t starttls = ((uint32_t)1 << SV_SMTP) | ((uint32_t)1 << SV_POP3) | ((uint32_t)1 << SV_IMAP) |
                        ((uint32_t)1 << SV_XMPP) | ((uint32_t)1 << SV_MYSQL) | ((uint32_t)1 << SV_RDP);
    if ((c & starttls) || ((c & ((uint32_t)1 << SV_HTTP)) && (s->bits & EV(E_CONNECT))))
        return (c & ((uint32_t)1 << SV_SSL)) || (no >= SVC_LOOK_TLS && nr >= SVC_LOOK_TLS);
    if (c)
        return 1;
    return no >= SVC_LOOK && nr >= SVC_LOOK;
}

/* Text, as far as its first bytes tell: printable ASCII, tabs and line ends. */
static inline int
textual(const uint8_t *p, int64_t len)
{
    for (int64_t i = 0; i < len && i < 8; i++)
        if ((p[i] < 0x20 && p[i] != '\r' && p[i] != '\n' && p[i] != '\t') || p[i] >= 0x7F)
            return 0;
    return 1;
}

/* Read one packet's payload. p/len: the captured payload bytes; is_orig: sent by the
 * originator; tcp: 1 for TCP, 0 for UDP; partial: a TCP connection whose SYN was not seen,
 * whose text lines Zeek's line-based analyzers (HTTP, FTP, SMTP, POP3, IMAP, IRC) skip
 * (ContentLine_Analyzer::SetSkipPartial). A server name found (TLS SNI, HTTP Host) goes
 * to name[0..name_max) when name[0] is still 0; a data connection announced on a control
 * channel goes to *ex (ex->service stays -1 otherwise). Returns the confirmed bits. */
static __attribute__((noinline)) uint32_t
svc_packet(svc_t *s, const uint8_t *p, int64_t len, int is_orig, int tcp, int partial, char *name, int name_max,
           svc_expect_t *ex)
{
    ex->service = -1;
    if (len <= 0)
        return svc_confirmed(s);
    int shift = is_orig ? 0 : 16;
    uint64_t seen = (s->count >> shift) & 0xFFFF;
    if (seen < 0xFFFF)
        s->count += (uint64_t)1 << shift;
    uint32_t c = svc_confirmed(s);
    int look = (c & SVC_CONTROL) ? 0xFFFF : c ? SVC_LOOK_TLS : SVC_LOOK;
    if ((int)seen >= look)
        return c; /* this side said enough; the other may still answer */
    int early = seen < SVC_LOOK; /* identification proper: the first packets only */
    const uint8_t *line;
    int64_t n;
    if (tcp) {
        int hello = tls_hello(p, len);
        if (hello) {
            s->bits |= BIT(SV_SSL);
            if (hello == 1 && name && !name[0])
                tls_sni(p, len, name, name_max);
        }
        if (early) {
            int m = is_orig && !partial ? http_request(p, len) : 0;
            if (m) {
                s->bits |= EV(E_HTTP_O);
                if (m == 7) /* CONNECT: a tunnel, often TLS, follows the reply */
                    s->bits |= EV(E_CONNECT);
                if (name && !name[0])
                    http_host(p, len, name, name_max);
            }
            if (!is_orig && !partial && len >= 6 && memcmp(p, "HTTP/", 5) == 0 && is_digit(p[5]))
                s->bits |= EV(E_HTTP_R);
            /* SSH: "SSH-" at the start (the server may send other lines before it) */
            int text = textual(p, len);
            if (len >= 4 && starts_ci(p, len, "ssh-"))
                s->bits |= is_orig ? EV(E_SSH_O) : EV(E_SSH_R);
            else if (!is_orig && text && !m)
                for (int64_t at = 0; next_line(p, len, &at, &line, &n);)
                    if (starts_ci(line, p + len - line, "ssh-"))
                        s->bits |= EV(E_SSH_R);
            if (is_orig ? mysql_response(p, len) && HAS(s, E_MYSQL_R) : mysql_greeting(p, len))
                s->bits |= is_orig ? EV(E_MYSQL_O) : EV(E_MYSQL_R);
            if (is_orig ? redis_client(p, len) : redis_server(p, len))
                s->bits |= is_orig ? EV(E_REDIS_O) : EV(E_REDIS_R);
            if (rdp_tpkt(p, len, is_orig ? 0xE0 : 0xD0))
                s->bits |= is_orig ? EV(E_RDP_O) : EV(E_RDP_R);
            if (xmpp_stream(p, len))
                s->bits |= BIT(SV_XMPP);
            if (smb_packet(p, len))
                s->bits |= BIT(SV_SMB);
            if (dce_rpc_packet(p, len))
                s->bits |= BIT(SV_DCE_RPC);
            if (modbus_adu(p, len))
                s->bits |= BIT(SV_MODBUS);
            if (len >= 16 && rd32(p) + 4 == (uint64_t)len && krb_message(p + 4, len - 4))
                s->bits |= BIT(SV_KRB_TCP);
            if (len >= 2 && rd16(p) + 2 == len && dns_message(p + 2, len - 2))
                s->bits |= BIT(SV_DNS);
        }
        if ((early || (svc_confirmed(s) & SVC_CONTROL)) && !partial && !(s->bits & BIT(SV_HTTP)) &&
            textual(p, len))
            for (int64_t at = 0; next_line(p, len, &at, &line, &n);)
                text_line(s, line, n, is_orig, ex);
    } else if (early) {
        if (dns_message(p, len))
            s->bits |= BIT(SV_DNS);
        else if (dhcp_packet(p, len))
            s->bits |= BIT(SV_DHCP);
        else if (quic_initial(p, len))
            s->bits |= BIT(SV_QUIC) | BIT(SV_SSL); /* Zeek hands the Initial's ClientHello to its TLS analyzer */
        else if (dtls_hello(p, len))
            s->bits |= BIT(SV_DTLS);
        else if (krb_message(p, len))
            s->bits |= BIT(SV_KRB);
        else if (vxlan_packet(p, len))
            s->bits |= BIT(SV_VXLAN);
        else if (geneve_packet(p, len))
            s->bits |= BIT(SV_GENEVE);
        else if (gtpv1_packet(p, len))
            s->bits |= BIT(SV_GTPV1);
        else if (ayiya_packet(p, len))
            s->bits |= BIT(SV_AYIYA);
        else if (teredo_packet(p, len))
            s->bits |= is_orig ? EV(E_TEREDO_O) : EV(E_TEREDO_R);
        else if (ntp_packet(p, len))
            s->bits |= BIT(SV_NTP);
    }
    pairs(s);
    return svc_confirmed(s);
}

#undef BIT
#undef EV
#undef HAS
#endif
