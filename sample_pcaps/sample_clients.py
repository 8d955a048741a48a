"""Client scenarios for make_samples.sh, run inside the client network namespace.

Each scenario makes a fixed, known amount of traffic; sample_pcaps/README.md lists the
numbers and tests/test_samples.py checks flowkit against them.
"""
import socket
import struct
import sys
import time
import urllib.request

SERVER4 = "10.99.0.1"
SERVER6 = "fd99::1"
SCANNER4 = "10.99.0.3"  # second client address, used only by the port scan
BLACKHOLE4 = "10.99.0.9"  # routed to a MAC address nobody owns: SYNs are never answered


def http_get(host: str, port: int, path: str = "/") -> None:
    url = f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()


def dns_query(server: str, name: str, qid: int) -> None:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(family, socket.SOCK_DGRAM) as s:  # fresh socket: one flow per query
        s.settimeout(2)
        s.sendto(query, (server, 53))
        s.recvfrom(2048)


def http() -> None:
    # 3 GETs to port 80, 2 to port 8080, 1 to a missing page (404)
    for _ in range(3):
        http_get(SERVER4, 80)
    for _ in range(2):
        http_get(SERVER4, 8080)
    try:
        http_get(SERVER4, 80, "/no-such-page")
    except urllib.error.HTTPError:
        pass


def dns() -> None:
    # 10 queries, each from its own socket (10 UDP flows), one UDP echo flow of 5 datagrams,
    # and one datagram to UDP 5353 where nothing listens (answered by ICMP port unreachable)
    for i in range(10):
        dns_query(SERVER4, f"host{i}.flowkit.test", 0x1000 + i)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for i in range(5):
            s.sendto(b"echo %d" % i, (SERVER4, 7))
            s.recvfrom(2048)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"nobody home", (SERVER4, 5353))
        time.sleep(0.1)


def refused() -> None:
    # one TCP connection to a closed port: SYN answered by RST-ACK (Zeek REJ)
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((SERVER4, 8081))
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


def unanswered() -> None:
    # one TCP connection to 10.99.0.9 port 9999, a blackholed address:
    # the kernel retransmits the SYN (at +1, +2, +3 s on 6.x kernels with linear SYN timeouts,
    # +1, +3 s on older ones) until we give up at 3.5 s; closing a socket in SYN_SENT sends
    # nothing, so the flow is Zeek S0 with 3 or 4 SYNs
    s = socket.socket()
    s.settimeout(3.5)
    try:
        s.connect((BLACKHOLE4, 9999))
    except (TimeoutError, socket.timeout):
        pass
    finally:
        s.close()


def ephemeral() -> None:
    # 300 short HTTP connections round-robin to ports 80, 8080, 8000 (100 each), from
    # ports the Linux kernel picks (net.ipv4.ip_local_port_range, 32768-60999 by default)
    ports = (80, 8080, 8000)
    for i in range(300):
        http_get(SERVER4, ports[i % 3])


def scan() -> None:
    # connect() scan from 10.99.0.3 over TCP ports 1-100 of the server: only 80 is open
    for port in range(1, 101):
        s = socket.socket()
        s.bind((SCANNER4, 0))
        s.settimeout(1)
        try:
            s.connect((SERVER4, port))
        except ConnectionRefusedError:
            pass
        finally:
            s.close()


def ipv6() -> None:
    # over IPv6: 2 HTTP GETs to port 80, 3 DNS queries, 1 refused connection (port 8081)
    for _ in range(2):
        http_get(SERVER6, 80)
    for i in range(3):
        dns_query(SERVER6, f"v6host{i}.flowkit.test", 0x2000 + i)
    s = socket.socket(socket.AF_INET6)
    s.settimeout(2)
    try:
        s.connect((SERVER6, 8081))
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()[name]()
        time.sleep(0.2)
