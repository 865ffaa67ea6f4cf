// Package netsim is an emulated internet for deterministic tests of NAT
// traversal: hosts, NAT routers and links in one process, with a
// segment-level TCP handshake, UDP, and virtual time.
//
// It is the lowest layer of fnmesh and imports nothing of ours. A *Host
// implements the network interface that package punch consumes
// (punch.Network: ListenTCP, DialTCP and ListenUDP with explicit, reusable
// local addresses), so the punch, rendezvous and collective layers run the
// same code on real sockets and on netsim.
//
// Build a topology with New, Internet.AddHost, Internet.AddNAT and
// NAT.AddHost (NATs nest: a home router behind a carrier-grade NAT). Each
// NAT is configured by independent knobs (NATConfig: mapping, filtering,
// port allocation, hairpinning, the answer to an unsolicited SYN, timeouts)
// or by a preset such as LinuxMasquerade, HomeRouter, Symmetric or
// CloudNAT. Links (WithLink) have latency, jitter, bandwidth and loss.
//
// TCP connection setup is emulated segment by segment (SYN, SYN-ACK, ACK,
// RST) with a real state machine: simultaneous open, RST from a closed
// port, SYN retransmission after 1, 3, 7... seconds, connection refused
// versus timed out. Established connections carry data reliably and in
// order with the links' latency and bandwidth, without per-segment
// overhead, at gigabytes per second when unshaped.
//
// Everything runs on the time package and blocks only on channels and
// timers, so a test inside a testing/synctest bubble runs in virtual time:
// a dial that times out after 127 s returns at once. The same seed gives the
// same port choices, jitter and losses. Outside a bubble netsim runs in
// real time. WithTrace records every packet and NAT decision; NAT.Stats
// counts them per router.
//
// See docs/netsim.md for the behaviour of each preset and what netsim does
// not model.
package netsim
