#!/bin/sh
# stale-rst.sh: what a Linux host and an nftables masquerade router do with
# a RST that answers a host's first SYN but arrives after the peer's SYN
# has crossed it (the host is then in SYN-RECEIVED). Needs root, ip, nft,
# conntrack and python3. Builds three namespaces of its own (host A behind
# router NA, host X on the lab internet; addresses in 198.18.0.0/24 and
# 198.51.100.0/24 only), runs each case, prints A's socket states, the RSTs
# that reached A's host and the router's conntrack entry, and removes the
# namespaces, also on failure or interrupt.
#
# X drops TCP to its port 5000 in its input chain and speaks with raw
# sockets: it captures A's SYN (for A's ISN), sends its own SYN (the
# crossing), then, per case, nothing ("none"), a RST with sequence 0 (the
# stale answer to A's first SYN, "rst0") or a RST inside A's window
# ("rstexact"), then the final ACK. A fourth case, "outward", closes A's
# socket in SYN-SENT and has X connect to it: A's stack answers with a RST
# with sequence 0 through the router's SYN_SENT2 entry.
#
# Measured on Linux 6.18 (docs/netsim.md): "none" and "rst0" end ESTABLISHED
# with the entry ASSURED (in "rst0" the RST reaches A's host, translated,
# and A ignores it); "rstexact" resets A (errno 104) and closes the entry;
# in "outward" the entry stays SYN_SENT2, and the RST leaves the router
# translated in some series of runs and untranslated (conntrack found it
# outside the window; it then carries A's private address) in others: it
# depends on where A's initial sequence number falls, which drifts with time.
# MODES="rst0 outward" runs some cases only.
set -eu
dir=$(mktemp -d)
a=sra$$ na=srna$$ x=srx$$ # this run's namespaces: host A, router NA, host X
xpid=
teardown() {
	if [ -n "$xpid" ]; then kill "$xpid" 2>/dev/null || true; fi
	for n in "$a" "$na" "$x"; do ip netns del "$n" 2>/dev/null || true; done
}
trap 'teardown; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

setup() {
	teardown
	ip netns add "$a"
	ip netns add "$na"
	ip netns add "$x"
	ip link add rxa0 netns "$a" type veth peer name lan netns "$na"
	ip link add rxx0 netns "$x" type veth peer name wan netns "$na"
	ip -n "$a" addr add 198.18.0.2/24 dev rxa0
	ip -n "$a" link set rxa0 up
	ip -n "$a" route add default via 198.18.0.1
	ip -n "$na" addr add 198.18.0.1/24 dev lan
	ip -n "$na" addr add 198.51.100.1/24 dev wan
	ip -n "$na" link set lan up
	ip -n "$na" link set wan up
	ip netns exec "$na" sysctl -qw net.ipv4.ip_forward=1
	ip -n "$x" addr add 198.51.100.2/24 dev rxx0
	ip -n "$x" link set rxx0 up
	ip netns exec "$na" nft -f - <<'NFT'
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "wan" masquerade
  }
}
NFT
	ip netns exec "$x" nft -f - <<'NFT'
table inet f {
  chain in {
    type filter hook input priority 0;
    tcp dport 5000 drop
  }
}
NFT
}

cat >"$dir/a.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setblocking(False)
s.bind(("198.18.0.2", 5000))
s.connect_ex(("198.51.100.2", 5000))
if sys.argv[1] == "outward":
    time.sleep(0.2)
    s.close()
    print("A closed its SYN-SENT socket", flush=True)
    time.sleep(1.5)
    sys.exit(0)
cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
cap.bind(("rxa0", 0))
cap.setblocking(False)
def rsts():
    while True:
        try:
            p = cap.recv(2000)
        except BlockingIOError:
            return
        ihl = (p[0] & 15) * 4
        if p[9] == 6 and p[ihl + 13] & 0x04 and socket.inet_ntoa(p[16:20]) == "198.18.0.2":
            seq = int.from_bytes(p[ihl + 4:ihl + 8], "big")
            print(f"A's host received a RST with sequence {seq}", flush=True)
names = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 7: "CLOSE", None: "gone"}
last, t0 = 0, time.time()
while time.time() - t0 < 2:
    st = None
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(":1388") and f[2].endswith(":1388"):
            st = int(f[3], 16)
    rsts()
    if st != last:
        print(f"A {time.time()-t0:.3f}s {names.get(st, st)}", flush=True)
        last = st
    time.sleep(0.005)
print("A SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), flush=True)
PY

cat >"$dir/x.py" <<'PY'
import socket, struct, sys, time
mode = sys.argv[1]
X, N = "198.51.100.2", "198.51.100.1"
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def tcp(seq, ack, flags):
    h = struct.pack("!HHIIBBHHH", 5000, 5000, seq, ack, 5 << 4, flags, 64240, 0, 0)
    ph = socket.inet_aton(X) + socket.inet_aton(N) + struct.pack("!BBH", 0, 6, len(h))
    return h[:16] + struct.pack("!H", csum(ph + h)) + h[18:]
cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
cap.bind(("rxx0", 0))
cap.settimeout(3)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.bind((X, 0))
def send(seq, ack, flags, what):
    raw.sendto(tcp(seq, ack, flags), (N, 0))
    print(f"X sent {what} seq={seq} ack={ack}", flush=True)
def wait(flags, sources=(N,)):
    for _ in range(100):
        p = cap.recv(2000)
        ihl = (p[0] & 15) * 4
        src = socket.inet_ntoa(p[12:16])
        if p[9] != 6 or src not in sources:
            continue
        sp, dp, seq, ack, off, fl = struct.unpack("!HHIIBB", p[ihl:ihl + 14])
        if dp == 5000:
            print(f"X got flags={fl:#x} seq={seq} ack={ack} from {src}", flush=True)
            if fl & 0x3f == flags:
                return src, seq, ack
    raise TimeoutError
_, isn_a, _ = wait(0x02)
ISNX = 1000000
if mode == "outward":
    time.sleep(0.5)
    send(ISNX, 0, 0x02, "SYN to A, whose socket is gone")
    try:
        src, _, _ = wait(0x14, (N, "198.18.0.2"))
        if src == N:
            print("X: the RST came through the router, translated")
        else:
            print("X: the RST left the router untranslated (conntrack found it invalid)")
    except TimeoutError:
        print("X: no RST")
    sys.exit(0)
time.sleep(0.05)
send(ISNX, 0, 0x02, "SYN (the crossing)")
_, seq, ack = wait(0x12)
if mode == "rst0":
    send(0, isn_a + 1, 0x14, "RST+ACK with sequence 0 (the answer to A's first SYN)")
elif mode == "rstexact":
    send(ISNX + 1, isn_a + 1, 0x14, "RST+ACK inside A's window")
time.sleep(0.3)
send(ISNX + 1, isn_a + 1, 0x10, "ACK")
time.sleep(0.2)
PY

for mode in ${MODES:-none rst0 rstexact outward}; do
	echo "== $mode"
	setup
	ip netns exec "$x" python3 "$dir/x.py" "$mode" &
	xpid=$!
	sleep 0.5
	ip netns exec "$a" python3 "$dir/a.py" "$mode"
	wait "$xpid" || echo "X's side failed ($?)"
	xpid=
	ip netns exec "$na" conntrack -L -p tcp 2>/dev/null || true
done
