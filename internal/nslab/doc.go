// Package nslab builds a real-kernel NAT lab out of Linux network namespaces,
// veth pairs, bridges and nftables, so that fnmesh's real binaries can be
// tested against the NAT behaviours of a real Linux router rather than an
// emulation of them.
//
// A lab has one "internet": a namespace holding a bridge that public hosts
// (such as the rendezvous server) and NAT routers attach to, with addresses in
// the documentation ranges 203.0.113.0/24 and 198.51.100.0/24. Each NAT
// router is a namespace with a WAN interface on that bridge, a LAN bridge with
// a private prefix inside 198.18.0.0/15, and an nftables ruleset that gives it
// one of the measured Linux behaviours (see NAT). Workers are namespaces on a
// router's LAN. No namespace has a default route: every route points at one
// of the lab's own prefixes, so no packet can leave the lab.
//
// Namespaces are named "<prefix>-<pid>-<start>-<random>-<node>" (<start>:
// the process's start time), so that concurrent labs never collide and
// CleanStale can remove what a killed test process left behind (namespaces
// whose pid is no longer running, is a zombie, or now belongs to a process
// with another start time). Check's probe namespace is named the same way
// and is closed by CloseAll like a lab's. Close removes
// every namespace of a lab, and with it every veth, bridge and nftables rule
// in them, after killing the processes still running inside; it also
// removes a namespace being added while it runs. Programs started with
// Host.Command die with the process that started them, so a test binary
// killed or timing out leaves only namespaces, for CleanStale.
//
// Building a lab needs root, the ip command (iproute2) and nft (nftables);
// Check says why a machine cannot. The package is internal: it exists for the
// lab tests and benchmarks of fnmesh, and sits beside the layers rather than
// in them (of fnmesh's packages it imports only internal/proc).
package nslab
