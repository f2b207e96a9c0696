"""A storm of DHCP REQUESTs for the crash-consistency test: INIT-REBOOT requests (no server id,
a requested address) from distinct MACs, one at a time, each waiting up to 0.3 s for its answer.
Every ACK is written to OUT as "mac ip" and flushed at once, so the test knows exactly which
leases the server acknowledged before it was killed.

usage: storm.py ROUND COUNT FIRST_IP_LAST_OCTET OUT"""
import socket
import struct
import sys

round_, count, first, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
# The limited broadcast leaves through eth0 (there is no default route).
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.bind(("0.0.0.0", 68))
s.settimeout(0.3)
with open(out, "a", buffering=1) as log:
    for i in range(count):
        mac = bytes([0x52, 0x54, 0xCC, round_, i >> 8, i & 0xFF])
        ip = bytes([10, 77, 0, first + i])
        xid = (round_ << 16) | i
        pkt = bytearray(240)
        pkt[0:4] = b"\x01\x01\x06\x00"
        pkt[4:8] = struct.pack("!I", xid)
        pkt[10] = 0x80
        pkt[28:34] = mac
        pkt[236:240] = b"\x63\x82\x53\x63"
        pkt += bytes([53, 1, 3, 50, 4]) + ip + bytes([255])
        s.sendto(bytes(pkt), ("255.255.255.255", 67))
        try:
            while True:
                data, _ = s.recvfrom(1500)
                if len(data) < 240 or struct.unpack("!I", data[4:8])[0] != xid:
                    continue
                opts = data[240:]
                if b"\x35\x01\x05" in opts:  # message type ACK
                    log.write("%s %s\n" % (":".join("%02x" % b for b in mac), socket.inet_ntoa(data[16:20])))
                break
        except socket.timeout:
            pass
