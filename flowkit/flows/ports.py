"""Likely server ports: Zeek's ``likely_server_ports`` for orienting midstream TCP and UDP.

Zeek fills ``likely_server_ports`` from the ports its protocol analyzers register
(``Analyzer::register_for_ports`` in each ``base/protocols/*/main.zeek``) when it runs
with its default scripts. flowkit uses that union, fixed, whatever the traffic; the
list is documented in docs/semantics.md. A connection whose first packet is not a
SYN (or is a SYN-ACK) is flipped when its source port is in the list and its
destination port is not (both in the list: flipped only for non-SYN packets whose
source port is the lower one), as Zeek's ``WantConnection`` does.
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
        88,  # kerberos
        110,  # pop3
        135,  # dce-rpc endpoint mapper
        139, 445,  # smb
        143,  # imap
        194, 6666, 6667, 6668, 6669,  # irc
        389, 3268,  # ldap
        443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223,  # ssl/tls
        502,  # modbus
        1883,  # mqtt
        3306,  # mysql
        3389,  # rdp
        5222, 5269,  # xmpp
        5432,  # postgresql
        6379,  # redis
        20000,  # dnp3
        111, 2049,  # sun rpc, nfs
        1723,  # pptp / gre control
    }
)

UDP_SERVER_PORTS = frozenset(
    {
        53, 137, 5353, 5355,  # dns, netbios-ns, mdns, llmnr
        67, 68,  # dhcp (both ends registered by Zeek's dhcp analyzer)
        69,  # tftp
        88,  # kerberos
        111, 2049,  # sun rpc, nfs
        123,  # ntp
        161, 162,  # snmp
        389,  # ldap (cldap)
        443,  # quic
        500, 4500,  # ike
        514,  # syslog
        1812, 1813,  # radius
        3389,  # rdp over udp
        3544,  # teredo
        4789,  # vxlan
        5060,  # sip
        5072,  # ayiya
        6081,  # geneve
        2123, 2152,  # gtp
        20000,  # dnp3
        47808,  # bacnet
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
