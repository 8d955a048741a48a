"""Servers for make_samples.sh, run inside the server network namespace.

  dns   UDP 53: answers every A query with one A record (10.99.0.1), like a tiny resolver
  echo  UDP 7:  sends each datagram back
Both listen dual-stack (IPv4 and IPv6) so the IPv6 samples reach them too.
"""
import socket
import struct
import sys


def udp_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    return s


def dns_answer(query: bytes) -> bytes:
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    # copy the question section (name, type, class) from the query
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12 : end + 5]
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("10.99.0.1")
    return header + question + answer


def main() -> None:
    kind = sys.argv[1]
    s = udp_socket(53 if kind == "dns" else 7)
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(dns_answer(data) if kind == "dns" else data, peer)


if __name__ == "__main__":
    main()
