"""Likely server ports: Zeek's ``likely_server_ports`` for orienting midstream TCP and UDP.

Zeek fills ``likely_server_ports`` from the ports its protocol analyzers register
(``Analyzer::register_for_ports`` in each ``base/protocols/*/main.zeek``) when it runs
with its default scripts. flowkit uses that union, fixed, whatever the traffic; the
list is documented in docs/semantics.md. A TCP connection whose first packet
is a SYN-ACK is flipped (the SYN-ACK sender is the responder). One whose first packet
has no SYN is flipped when its source port is in the list and its destination port is
not, or both are and the source port is the lower one (Zeek's ``WantConnection``).
UDP: flipped when the source port is in the list and the destination port is not.
"""
from __future__ import annotations

import numpy as np

TCP_SERVER_PORTS = frozenset(
    {
        21, 2811,  # ftp
        22,  # ssh
        25, 587,  # smtp
        53,  # dns
        80, 81, 631, 1080, 3128, 8000, 8080, 8888,  # http
        79,  # finger
        88,  # kerberos
        135,  # dce-rpc endpoint mapper
        139, 445,  # smb
        143,  # imap
        6666, 6667, 6668, 6669,  # irc
        389, 3268,  # ldap
        443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223,  # ssl/tls
        502,  # modbus
        1883,  # mqtt
        1434, 3306,  # mysql
        514,  # syslog over tcp
        3389,  # rdp
        5222, 5269,  # xmpp
        5432,  # postgresql
        6379,  # redis
        20000,  # dnp3
    }
)

UDP_SERVER_PORTS = frozenset(
    {
        53, 137, 5353, 5355,  # dns, netbios-ns, mdns, llmnr
        67, 4011,  # dhcp server ports (68 is registered as a client port: not likely)
        88,  # kerberos
        123,  # ntp
        161, 162,  # snmp
        389,  # ldap (cldap)
        443,  # quic
        514,  # syslog
        1812,  # radius
        3389,  # rdp over udp
        3544,  # teredo
        4789,  # vxlan
        5060,  # sip
        5072,  # ayiya
        6081,  # geneve
        2123, 2152,  # gtp
        20000,  # dnp3
    }
)


def _table(ports) -> np.ndarray:
    table = np.zeros(65536, dtype=bool)
    table[list(ports)] = True
    return table


TCP_LIKELY = _table(TCP_SERVER_PORTS)
UDP_LIKELY = _table(UDP_SERVER_PORTS)


def likely(port: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """Boolean per element: is ``port`` a likely server port for ``proto`` (6 or 17)?"""
    port = np.asarray(port, dtype=np.int64)
    return np.where(np.asarray(proto) == 6, TCP_LIKELY[port], UDP_LIKELY[port])


V4_MAPPED_HI = np.uint64(0)
V4_MAPPED_LO_PREFIX = np.uint64(0x0000FFFF00000000)


def group_address(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Broadcast (255.255.255.255) or multicast (224.0.0.0/4, ff00::/8) addresses.

    Zeek does not flip connections sent to such addresses, whatever the ports
    (a reply-looking packet to a group address is not from a client).
    """
    hi = np.asarray(hi).view(np.uint64)
    lo = np.asarray(lo).view(np.uint64)
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    a4 = lo & np.uint64(0xFFFFFFFF)
    v4_group = v4 & ((a4 == np.uint64(0xFFFFFFFF)) | ((a4 >> np.uint64(28)) == np.uint64(0xE)))
    v6_group = ~v4 & ((hi >> np.uint64(56)) == np.uint64(0xFF))
    return v4_group | v6_group
