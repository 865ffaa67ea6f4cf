// Package punch makes direct TCP links between processes that can only
// connect outwards, such as serverless functions behind NATs: socket-level
// NAT traversal.
//
// It sits between the rendezvous layer and the network:
//
//	rendezvous   who links with whom, when to punch, relay when punching fails
//	   │
//	punch        reusable ports, STUN discovery, TCP simultaneous open, link handshake
//	   │
//	Network      the operating system (OS) or an emulated internet (netsim)
//
// A worker opens one Port, a local TCP port marked reusable (SO_REUSEADDR
// and SO_REUSEPORT), and uses it for everything: it learns the port's public
// endpoint with STUN (DiscoverTCP, DiscoverUDP), holds its connection to the
// rendezvous server (Port.Dial), and, when the rendezvous server says so,
// punches a link to each peer (Port.Punch): it connects from the port to the
// peer's endpoints again and again while accepting on it, so that the two
// ends' SYNs cross in their NATs (TCP simultaneous open). Every link, punched
// or relayed, passes Handshake before use: both ends prove with an HMAC over
// fresh nonces, keyed by the job's secret, that they belong to the same job
// and are the ranks they claim. A Port's accept loop rejects anything else
// that reaches the port.
//
// The Network interface is what punch consumes: OS() implements it with real
// sockets and every netsim host implements it on an emulated internet, so
// the same code is tested deterministically in virtual time and runs
// unchanged on real NATs. docs/nat-traversal.md describes the whole path from
// join to link, the tiers (direct, punched, relay) and the socket details.
package punch
