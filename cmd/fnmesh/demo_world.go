package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/fnmesh/fnmesh/rendezvous"
)

// demoServerAddr is where the demo's rendezvous server listens (TCP control
// and relay, UDP STUN) on the emulated internet.
var demoServerAddr = netip.MustParseAddrPort("203.0.113.10:7000")

// demoWorld is the demo's emulated internet: the rendezvous server on a
// public host and the workers, each at one of the demo's sites.
type demoWorld struct {
	inet    *netsim.Internet
	server  string // rendezvous address, "host:port"
	stop    context.CancelFunc
	done    chan error
	workers []demoWorker // indexed by rank
}

// demoWorker is one worker: a host, where it sits, and how it reaches the
// internet.
type demoWorker struct {
	host *netsim.Host
	site demoSite
	// path is the chain of routers from the host to the internet, e.g.
	// "198.18.1.2 > linux-masquerade 198.51.100.1".
	path string
}

// demoSite is a kind of place a worker runs.
type demoSite int

const (
	siteLinux demoSite = iota
	siteHome
	siteFullCone
	siteCarrierGrade
	siteCloud
	sitePublic
	numSites
)

// String is the site's name in the tables.
func (s demoSite) String() string {
	return [...]string{"Linux masquerade", "home router", "full cone", "home router behind CGN", "cloud NAT (symmetric)", "public host"}[s]
}

// symmetric reports whether the site's NAT maps each destination to its own
// public port, which no hole punch gets through.
func (s demoSite) symmetric() bool { return s == siteCloud }

// newDemoWorld builds the internet, starts the rendezvous server and adds
// cfg.workers workers, worker i at site i mod numSites: a second worker at a
// site shares the first one's NAT (and LAN), except behind the carrier-grade
// NAT, where each worker has its own home router.
func newDemoWorld(cfg demoConfig, secret []byte, logger *slog.Logger) (_ *demoWorld, err error) {
	link := netsim.WithLink(netsim.Link{Latency: cfg.latency})
	inet := netsim.New(netsim.WithSeed(cfg.seed))
	w := &demoWorld{inet: inet, server: demoServerAddr.String()}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	srvHost, err := inet.AddHost(demoServerAddr.Addr(), link, netsim.WithName("rendezvous"))
	if err != nil {
		return nil, fmt.Errorf("rendezvous host: %w", err)
	}
	ln, err := srvHost.ListenTCP(context.Background(), demoServerAddr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous listener: %w", err)
	}
	pc, err := srvHost.ListenUDP(context.Background(), demoServerAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("rendezvous STUN socket: %w", err)
	}
	srv := rendezvous.NewServer(secret, rendezvous.WithDefaultPunchTimeout(cfg.punchTimeout),
		rendezvous.WithServerLogger(logger.With("side", "server")))
	ctx, cancel := context.WithCancel(context.Background())
	w.stop, w.done = cancel, make(chan error, 1)
	go func() { w.done <- srv.Serve(ctx, ln, pc) }()

	nats := map[demoSite]*netsim.NAT{}
	perSite := map[demoSite]int{}
	for i := range cfg.workers {
		site := demoSite(i % int(numSites))
		n := perSite[site]
		perSite[site]++
		var h *netsim.Host
		var path string
		lanHost := netip.AddrFrom4([4]byte{198, 18, byte(1 + site), byte(2 + n)})
		switch site {
		case sitePublic:
			addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(21 + n)})
			h, err = inet.AddHost(addr, link)
			path = addr.String()
		case siteCarrierGrade:
			if nats[site] == nil {
				if nats[site], err = inet.AddNAT(netip.MustParseAddr("198.51.100.4"), netsim.CarrierGrade, link); err != nil {
					break
				}
			}
			// Each subscriber of the carrier has its own home router, on the
			// carrier's shared network 198.19.4.0/24.
			var home *netsim.NAT
			wan := netip.AddrFrom4([4]byte{198, 19, 4, byte(2 + n)})
			if home, err = nats[site].AddNAT(wan, netsim.HomeRouter, link); err != nil {
				break
			}
			lanHost = netip.AddrFrom4([4]byte{198, 18, byte(40 + n), 2})
			h, err = home.AddHost(lanHost, link)
			path = fmt.Sprintf("%s > home-router %s > carrier-grade %s", lanHost, wan, nats[site].Addr())
		default:
			if nats[site] == nil {
				cfgs := map[demoSite]netsim.NATConfig{
					siteLinux: netsim.LinuxMasquerade, siteHome: netsim.HomeRouter,
					siteFullCone: netsim.FullCone, siteCloud: netsim.CloudNAT,
				}
				pub := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + site)})
				if nats[site], err = inet.AddNAT(pub, cfgs[site], link); err != nil {
					break
				}
			}
			h, err = nats[site].AddHost(lanHost, link)
			path = fmt.Sprintf("%s > %s %s", lanHost, nats[site].Config().Name, nats[site].Addr())
		}
		if err != nil {
			return nil, fmt.Errorf("worker %d (%s): %w", i, site, err)
		}
		w.workers = append(w.workers, demoWorker{host: h, site: site, path: path})
	}
	return w, nil
}

// describe prints what the demo is about to run: the setting and the
// workers.
func (w *demoWorld) describe(out io.Writer, cfg demoConfig) {
	fmt.Fprintf(out, "fnmesh demo: %d workers behind emulated NATs, a rendezvous server at %s, %s each way per link,\n",
		len(w.workers), w.server, humanBytes(cfg.bytes))
	fmt.Fprintf(out, "%v one-way latency per link, pairs relayed after %v of punching (seed %d)\n\n", cfg.latency, cfg.punchTimeout, cfg.seed)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "rank\tsite\taddress > routers to the internet")
	for i, wk := range w.workers {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", i, wk.site, wk.path)
	}
	tw.Flush()
	fmt.Fprintln(out)
}

// close stops the server and the emulated internet.
func (w *demoWorld) close() {
	if w.stop != nil {
		w.stop()
		<-w.done
	}
	w.inet.Close()
}

// pairLabel names a pair of workers' sites for a table.
func (w *demoWorld) pairLabel(a, b int) string {
	return strings.Join([]string{w.workers[a].site.String(), w.workers[b].site.String()}, " <-> ")
}
