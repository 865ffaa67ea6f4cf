package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func init() {
	commands["join"] = command{
		summary: "join a job through a rendezvous server and verify a link to every peer",
		run:     runJoin,
	}
}

// joinReport is what fnmesh join prints: one JSON object on one line.
type joinReport struct {
	Rank  int  `json:"rank"`
	World int  `json:"world"`
	OK    bool `json:"ok"`
	// MeshMS is the time from the start of the join until every link of
	// this rank was up, in milliseconds.
	MeshMS float64      `json:"mesh_ms"`
	Peers  []peerReport `json:"peers"`
	// Error says why the join itself failed (no peers then).
	Error string `json:"error,omitempty"`
}

// peerReport is the outcome for the link to one peer.
type peerReport struct {
	Rank int `json:"rank"`
	// Tier is how the link was made: "direct", "punched" or "relay".
	Tier string `json:"tier"`
	// SetupMS is how long making this link took, in milliseconds.
	SetupMS float64 `json:"setup_ms"`
	// VerifiedBytes counts the bytes from the peer that arrived exactly as
	// sent (0 unless all did).
	VerifiedBytes int64 `json:"verified_bytes"`
	// ExchangeMS is how long sending and checking the bytes took, both
	// directions at once.
	ExchangeMS float64 `json:"exchange_ms"`
	Error      string  `json:"error,omitempty"`
}

// ms converts d to milliseconds with a precision of 10 µs.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fnmesh join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: fnmesh join --rendezvous HOST:PORT --job ID --world N [flags]

Joins job ID through the rendezvous server, links to every other rank
(directly, punched through NATs, or relayed), sends B random bytes to every
peer and checks the B bytes each peer sends back, all at once. Prints one
JSON object on stdout; exits 0 only if every peer's bytes verified in both
directions. The job secret comes from --secret-file or $FNMESH_SECRET.

flags:
`)
		fs.PrintDefaults()
	}
	var (
		addr         = fs.String("rendezvous", "", "rendezvous server `HOST:PORT` (required)")
		job          = fs.String("job", "", "job `ID` (required)")
		world        = fs.Int("world", 0, "number of ranks in the job (required)")
		secretFile   = fs.String("secret-file", "", "read the job secret from this `file` (default: $FNMESH_SECRET)")
		timeout      = fs.Duration("timeout", 2*time.Minute, "give up on the whole run after this long")
		punchTimeout = fs.Duration("punch-timeout", 0, "how long to try punching a pair before relaying it (default: the server's)")
		retry        = fs.Duration("connect-retry", rendezvous.DefaultConnectRetry, "keep dialing a server that refuses the connection (not up yet) this long; 0: fail at once")
		listen       = fs.String("listen", "", "local `IP:PORT` to punch from (default: any address, a free port)")
		verbose      = fs.Bool("v", false, "log progress to stderr")
	)
	var rank rankFlag
	fs.Var(&rank, "rank", "this `rank`, 0..N-1 (default: assigned by the server)")
	size := byteSize(1 << 20)
	fs.Var(&size, "bytes", "bytes to send to and check from every peer (e.g. 1048576, 64KiB, 1GiB)")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "fnmesh join: "+format+"\n", a...)
		return 2
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		usageErr("%v", err)
		flagHint(stderr, "fnmesh join")
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	// Every required flag missing, at once ("--world 0 out of range" was
	// all a run without --world said).
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var missing []string
	for _, f := range []struct {
		name, arg string
		ok        bool
	}{{"rendezvous", "HOST:PORT", *addr != ""}, {"job", "ID", *job != ""}, {"world", "N", given["world"]}} {
		if !f.ok {
			missing = append(missing, "--"+f.name+" "+f.arg)
		}
	}
	if len(missing) > 0 {
		verb := "are"
		if len(missing) == 1 {
			verb = "is"
		}
		usageErr("%s %s required", andList(missing), verb)
		flagHint(stderr, "fnmesh join")
		return 2
	}
	switch {
	case rendezvous.CheckAddr(*addr) != nil:
		return usageErr("--rendezvous %q: %v", *addr, rendezvous.CheckAddr(*addr))
	case rendezvous.CheckJob(*job) != nil:
		return usageErr("--job %q: %v", *job, rendezvous.CheckJob(*job))
	case *world < 1 || *world > rendezvous.MaxWorld:
		return usageErr("--world %d out of range 1..%d", *world, rendezvous.MaxWorld)
	case rank.set && (rank.rank < 0 || rank.rank >= *world):
		return usageErr("--rank %d out of range 0..%d", rank.rank, *world-1)
	case *timeout <= 0:
		return usageErr("--timeout must be positive")
	case *punchTimeout < 0:
		return usageErr("--punch-timeout %v must not be negative", *punchTimeout)
	case *punchTimeout > 0 && *punchTimeout < time.Millisecond:
		// The protocol carries it in milliseconds: it would be sent as 1ms.
		return usageErr("--punch-timeout %v is under the protocol's unit: it must be at least 1ms", *punchTimeout)
	case *retry < 0:
		return usageErr("--connect-retry %v must not be negative", *retry)
	}
	jobSecret, err := secret.Load(ctx, *secretFile)
	if err != nil {
		if ctx.Err() != nil { // a signal while it read a pipe: not a usage error
			fmt.Fprintf(stderr, "fnmesh join: %v\n", err)
			return 1
		}
		return usageErr("%v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := []rendezvous.Option{rendezvous.WithLogger(logger), rendezvous.WithConnectRetry(*retry)}
	wantRank := -1
	if rank.set {
		wantRank = rank.rank
		opts = append(opts, rendezvous.WithRank(rank.rank))
	}
	if *punchTimeout > 0 {
		opts = append(opts, rendezvous.WithPunchTimeout(*punchTimeout))
	}
	if *listen != "" {
		la, err := netip.ParseAddrPort(*listen)
		if err != nil {
			return usageErr("--listen %q: want IP:PORT, an IP address and a port (0: any free port), e.g. 0.0.0.0:0 or 10.0.0.5:40000", *listen)
		}
		opts = append(opts, rendezvous.WithLocalAddr(la))
	}

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep := joinAndVerify(ctx, *addr, *job, *world, wantRank, jobSecret, int64(size), logger, opts...)
	if rep.Error != "" && ctx.Err() != nil {
		// The library says "context deadline exceeded" or "context
		// canceled": say which limit it was.
		if parent.Err() != nil {
			rep.Error += " (interrupted)"
		} else {
			rep.Error += fmt.Sprintf(" (--timeout %v ran out)", *timeout)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // errors read "a->b", not "a-\u003eb"
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "fnmesh join: writing the report: %v\n", err)
		return 1
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// andList joins items as in "a", "a and b", "a, b and c".
func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// joinAndVerify joins the job and verifies every link with n bytes each way.
// rank is the requested rank (-1: any), used in the report if the join fails.
func joinAndVerify(ctx context.Context, addr, job string, world, rank int, secret []byte, n int64, logger *slog.Logger, opts ...rendezvous.Option) joinReport {
	m, err := rendezvous.Join(ctx, addr, job, world, secret, opts...)
	if err != nil {
		return joinReport{Rank: rank, World: world, Peers: []peerReport{}, Error: err.Error()}
	}
	defer m.Close()
	return verifyMesh(ctx, m, n, logger)
}

// verifyMesh verifies every link of m with n bytes each way and reports.
// The links stay open and usable: an exchange that succeeds leaves nothing
// unread on either side.
func verifyMesh(ctx context.Context, m *rendezvous.Mesh, n int64, logger *slog.Logger) joinReport {
	rep := joinReport{Rank: m.Rank, World: m.World, MeshMS: ms(m.Setup)}
	rep.Peers = verifyLinks(ctx, m, n, logger)
	rep.OK = len(rep.Peers) == m.World-1
	for _, p := range rep.Peers {
		if p.Error != "" {
			rep.OK = false
		}
	}
	return rep
}

// verifyLinks runs the exchange on every link of m at once and reports each,
// in rank order.
func verifyLinks(ctx context.Context, m *rendezvous.Mesh, n int64, logger *slog.Logger) []peerReport {
	peers := make([]peerReport, 0, m.World-1)
	for r := range m.World {
		if r != m.Rank {
			peers = append(peers, peerReport{Rank: r})
		}
	}
	var wg sync.WaitGroup
	for i := range peers {
		p := &peers[i]
		if p.Rank >= len(m.Links) || m.Links[p.Rank] == nil {
			p.Error = fmt.Sprintf("rank %d: no link to rank %d", m.Rank, p.Rank)
			continue
		}
		l := m.Links[p.Rank]
		p.Tier, p.SetupMS = l.Tier.String(), ms(l.Setup)
		wg.Go(func() {
			res := exchange(ctx, l.Conn, m.Rank, p.Rank, n)
			p.VerifiedBytes, p.ExchangeMS = res.Verified, ms(res.Elapsed)
			if res.Err != nil {
				p.Error = fmt.Sprintf("rank %d: link to rank %d (%s): %v", m.Rank, p.Rank, l.Tier, res.Err)
				logger.Warn("link failed verification", "rank", m.Rank, "peer", p.Rank, "tier", l.Tier.String(), "err", res.Err)
				return
			}
			logger.Info("link verified", "rank", m.Rank, "peer", p.Rank, "tier", l.Tier.String(),
				"setup", l.Setup, "bytes", res.Verified, "exchange", res.Elapsed)
		})
	}
	wg.Wait()
	return peers
}
