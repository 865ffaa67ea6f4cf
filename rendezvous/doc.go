// Package rendezvous is where the workers of an fnmesh job meet and come out
// with a full mesh of authenticated TCP links: the rendezvous server, its
// wire protocol, and the client call Join.
//
// It sits between the socket layer and the communicator:
//
//	collective   Comm over the mesh's links
//	   │
//	rendezvous   membership, ranks, address exchange, punch scheduling, relay
//	   │
//	punch        reusable ports, simultaneous open, STUN, link handshake
//	   │
//	Network      the operating system (punch.OS) or an emulated internet (netsim)
//
// A worker calls Join with the server's address, a job ID, the world size
// and the deployment secret:
//
//	mesh, err := rendezvous.Join(ctx, "rv.example.com:7000", "job-42", 64, secret)
//	...
//	defer mesh.Close()
//	mesh.Links[peer].Write(data) // a net.Conn to rank peer, whatever its tier
//
// Join opens a punch port, connects to the server from it and proves that
// it holds the secret without sending it (an HMAC over a fresh server
// challenge, keyed by punch.JoinToken). When world workers have joined, the
// server assigns the ranks nobody asked for, sends everyone the peer table
// (each member's public endpoint as the server saw it, and its private
// ones) and one moment to start, corrected for each member's measured
// one-way delay so that every pair's SYNs cross within about half a round
// trip. Every pair of the job punches at that moment, in parallel: setup
// time does not grow with the number of pairs.
//
// Each side reports its outcome per pair and the server decides, so both
// ends always agree on a pair's Tier:
//
//   - TierDirect: no NAT traversal was needed (a peer with a public address
//     of its own, or a link through a private endpoint on a shared LAN);
//   - TierPunched: TCP simultaneous open through NATs;
//   - TierRelay: the pair had no link by the punch deadline (a symmetric NAT,
//     say), so both sides connect to the server, which splices their
//     connections (splice(2) between sockets on Linux); the link handshake
//     then runs end to end through it.
//
// Every link passes punch.Handshake, so a link is to the right rank of the
// right job whatever path it took. A member that leaves a started job makes
// every other member's Join fail with an error naming its rank
// (ErrMemberLeft); a job whose members do not all have their mesh within
// the server's job timeout (counted from its first join) fails with
// ErrJobTimeout; bad, oversized or replayed frames get an error
// frame and a closed connection.
//
// The server (NewServer, Server.Serve) serves any number of jobs on one TCP
// listener, which also carries the relay and STUN over TCP, plus an optional
// UDP socket for STUN. Server.Handler exposes /healthz and Prometheus
// metrics. cmd/rendezvous is the server binary; docs/rendezvous.md specifies
// the protocol byte by byte and the security model.
package rendezvous
