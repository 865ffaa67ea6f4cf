// Command rendezvous runs the fnmesh rendezvous server: workers of a job
// meet there, get their ranks and each other's endpoints, punch their links
// at the moment it sets, and fall back to its relay where their NATs do not
// let a punch through.
//
//	rendezvous --listen 0.0.0.0:7000 --secret-file /etc/fnmesh/secret --http 127.0.0.1:9100
//
// It listens on one TCP port for control connections, relay connections and
// STUN over TCP, and on the same UDP port for STUN. The job secret comes
// from --secret-file or $FNMESH_SECRET. SIGINT or SIGTERM shut it down
// gracefully: waiting workers are told, established relays get --drain to
// finish; a second signal stops it at once. docs/rendezvous.md describes
// the flags, the protocol and the security model.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fnmesh/fnmesh/internal/buildinfo"
	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts the graceful shutdown, which may take a while
	// (--drain, the HTTP server's connections); a second one ends the
	// process at once, as SIGINT and SIGTERM do by default.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

// listening is told the addresses once the server listens (tests use it).
type listening func(tcp netip.AddrPort, http net.Addr)

// run is the command: it parses args, serves until ctx ends and returns the
// exit status (0: shut down cleanly, 1: failed, 2: bad usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready listening) int {
	fs := flag.NewFlagSet("rendezvous", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: rendezvous [--listen HOST:PORT] [flags]

Runs the fnmesh rendezvous server on TCP HOST:PORT (control, relay, STUN
over TCP) and, on the address and port TCP got, UDP (STUN). The job secret
comes from --secret-file or $FNMESH_SECRET. SIGINT/SIGTERM shut it down
gracefully; a second one stops it at once.

flags:
`)
		fs.PrintDefaults()
	}
	var (
		listen     = fs.String("listen", ":7000", "TCP and UDP `HOST:PORT` to serve on")
		secretFile = fs.String("secret-file", "", "read the job secret from this `file` (default: $"+secret.Env+")")
		httpAddr   = fs.String("http", "", "serve /healthz and /metrics (Prometheus text) on `HOST:PORT` (default: off)")
		noUDP      = fs.Bool("no-udp", false, "do not answer STUN over UDP")
		jobTimeout = fs.Duration("job-timeout", rendezvous.DefaultJobTimeout, "fail a job whose mesh is not complete this long after its first join (a complete world gets at least its punch timeout, 2 relay timeouts and 10s more)")
		punch      = fs.Duration("punch-timeout", rendezvous.DefaultPunchTimeout, "how long a pair may punch before it is relayed (workers may ask for less)")
		relay      = fs.Duration("relay-timeout", rendezvous.DefaultRelayTimeout, "how long a relay connection waits for its partner")
		handshake  = fs.Duration("handshake-timeout", rendezvous.DefaultHandshakeTimeout, "how long a new connection may take to send its first frames")
		ping       = fs.Duration("ping-interval", rendezvous.DefaultPingInterval, "how often waiting workers are pinged (3 missed: evicted)")
		maxConns   = fs.Int("max-conns", 0, "most TCP connections held at once (default: 20000, or fewer if the open-file limit holds fewer)")
		drain      = fs.Duration("drain", rendezvous.DefaultDrainTimeout, "on shutdown, how long established relays may run before they are cut")
		congestion = fs.String("relay-congestion", rendezvous.DefaultRelayCongestionControl, "TCP congestion control of relayed connections (\"\": the system's)")
		logLevel   = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		logJSON    = fs.Bool("log-json", false, "log JSON lines instead of text")
		version    = fs.Bool("version", false, "print the version and the protocol version on stdout, and exit")
	)
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rendezvous: "+format+"\n", a...)
		return 2
	}
	// A flag that does not parse gets one line and a pointer to -h, not
	// the whole help after it, which pushed the line off the screen.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return 0
	} else if err != nil {
		usageErr("%v", explainFlagError(fs, err))
		fmt.Fprintln(stderr, "Run 'rendezvous -h' for its flags.")
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *version {
		fmt.Fprintf(stdout, "%s, rendezvous protocol %d\n", buildinfo.String("rendezvous"), rendezvous.ProtoVersion)
		return 0
	}
	// The protocol carries these in milliseconds: a shorter one is not
	// what the workers would be told (a 500µs ping interval is sent as
	// 1ms, while the server would ping every 500µs and evict members
	// silent for 1.5ms).
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"job-timeout", *jobTimeout}, {"punch-timeout", *punch}, {"relay-timeout", *relay},
		{"handshake-timeout", *handshake}, {"ping-interval", *ping}} {
		if f.d <= 0 {
			return usageErr("--%s must be positive", f.name)
		}
		if f.d < time.Millisecond {
			return usageErr("--%s of %v is under the protocol's unit: it must be at least 1ms", f.name, f.d)
		}
	}
	if err := listenAddrErr(*listen, "0.0.0.0:7000"); err != nil {
		return usageErr("--listen %q: %v", *listen, err)
	}
	if err := listenAddrErr(*httpAddr, "127.0.0.1:9100"); *httpAddr != "" && err != nil {
		return usageErr("--http %q: %v", *httpAddr, err)
	}
	if *drain < 0 {
		return usageErr("--drain %v must not be negative", *drain)
	}
	if *maxConns < 0 || (*maxConns == 0 && flagSet(fs, "max-conns")) {
		return usageErr("--max-conns must be positive (leave it out for the default)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr("--log-level: %v", err)
	}
	// Before anything is logged: a usage error is the one line it prints.
	jobSecret, err := secret.Load(ctx, *secretFile)
	if err != nil {
		if ctx.Err() != nil { // a signal while it read a pipe: not a usage error
			fmt.Fprintf(stderr, "rendezvous: %v\n", err)
			return 1
		}
		return usageErr("%v", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	if *logJSON {
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	}
	limit, limited := openFileLimit()
	if *maxConns == 0 {
		if *maxConns = defaultMaxConns(limit, limited); *maxConns < rendezvous.DefaultMaxConns {
			// needed: the limit is in descriptors, up to 3 a connection.
			log.Info("--max-conns lowered from its default to fit the open-file limit",
				"max_conns", *maxConns, "limit", limit, "default", rendezvous.DefaultMaxConns,
				"needed", filesNeeded(rendezvous.DefaultMaxConns))
		}
	} else if limited {
		if need := filesNeeded(*maxConns); limit < need {
			log.Warn("the open-file limit is too low for --max-conns: connections past it fail to be accepted",
				"limit", limit, "max_conns", *maxConns, "needed", need,
				"fix", "raise the hard RLIMIT_NOFILE (ulimit -Hn, systemd LimitNOFILE=) or lower --max-conns")
		}
	}
	if len(jobSecret) < 16 {
		log.Warn("the job secret is short: use at least 32 random bytes", "bytes", len(jobSecret))
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			log.Error("cannot listen: the port is taken (another rendezvous server?); stop it or choose another --listen port", "listen", *listen, "err", err)
			return 1
		}
		log.Error("cannot listen", "err", err)
		return 1
	}
	tcpAddr := ln.Addr().(*net.TCPAddr).AddrPort()
	tcpAddr = netip.AddrPortFrom(tcpAddr.Addr().Unmap(), tcpAddr.Port())
	var pc net.PacketConn
	udpAddr := "off"
	if !*noUDP {
		// The address and port the TCP listener got, over UDP: not
		// --listen's host again, which may resolve to another address
		// (a name with several, or one that changed) than TCP took.
		if pc, err = lc.ListenPacket(ctx, "udp", tcpAddr.String()); err != nil {
			ln.Close()
			log.Error("cannot listen for STUN over UDP (use --no-udp to go without)", "err", err)
			return 1
		}
		udpAddr = pc.LocalAddr().String()
	}

	srv := rendezvous.NewServer(jobSecret,
		rendezvous.WithJobTimeout(*jobTimeout), rendezvous.WithDefaultPunchTimeout(*punch),
		rendezvous.WithRelayTimeout(*relay), rendezvous.WithHandshakeTimeout(*handshake),
		rendezvous.WithPingInterval(*ping), rendezvous.WithMaxConns(*maxConns),
		rendezvous.WithDrainTimeout(*drain), rendezvous.WithRelayCongestionControl(*congestion),
		rendezvous.WithServerLogger(log))

	var httpSrv *http.Server
	var httpLn net.Listener
	httpDone := make(chan error, 1)
	if *httpAddr != "" {
		if httpLn, err = lc.Listen(ctx, "tcp", *httpAddr); err != nil {
			ln.Close()
			if pc != nil {
				pc.Close()
			}
			log.Error("cannot listen for HTTP", "err", err)
			return 1
		}
		httpSrv = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: httpLimits.header,
			ReadTimeout: httpLimits.read, WriteTimeout: httpLimits.write, IdleTimeout: httpLimits.idle,
			MaxHeaderBytes: httpLimits.headerBytes, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		go func() { httpDone <- httpSrv.Serve(httpLn) }()
	}
	attrs := []any{"tcp", tcpAddr.String(), "udp", udpAddr}
	var httpListen net.Addr
	if httpLn != nil {
		httpListen = httpLn.Addr()
		attrs = append(attrs, "http", httpListen.String())
	}
	log.Info("rendezvous server listening", attrs...)
	if ready != nil {
		ready(tcpAddr, httpListen)
	}

	status := 0
	if err := srv.Serve(ctx, ln, pc); err != nil {
		log.Error("server failed", "err", err)
		status = 1
	}
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
		if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server failed", "err", err)
			status = 1
		}
	}
	m := srv.Metrics()
	log.Info("rendezvous server stopped", "joins", m.Joins, "jobs_complete", m.JobsEnded["complete"],
		"relay_bytes", m.RelayBytes)
	return status
}

// filesNeeded is how many descriptors the server may hold with maxConns
// connections: every connection may be one side of a relayed pair, and a
// relayed pair holds its 2 sockets and 2 pipes (4 descriptors, one pipe per
// direction), so 3 a connection; plus fdReserve for the listeners, the UDP
// socket, --http's connections, stdio and the runtime's own.
func filesNeeded(maxConns int) uint64 {
	return 3*uint64(maxConns) + fdReserve
}

const fdReserve = 64

// defaultMaxConns is --max-conns when it is not given: the library's
// default, lowered to what the open-file limit holds (at least 1).
func defaultMaxConns(limit uint64, limited bool) int {
	if !limited || limit >= filesNeeded(rendezvous.DefaultMaxConns) {
		return rendezvous.DefaultMaxConns
	}
	if limit <= fdReserve+3 {
		return 1
	}
	return int((limit - fdReserve) / 3)
}

// listenAddrErr says what is wrong with an address to listen on (example
// is one that is right), nil if it has the form HOST:PORT with a port of
// 0..65535 or a service name; HOST may be empty (every address), and
// resolving it is Listen's part. A malformed address is a usage error, not
// a failure to listen.
func listenAddrErr(addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT, e.g. %s (%w)", example, err)
	}
	if port != "" && strings.IndexAny(port[:1], "0123456789+-") == 0 {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("port %q is not 0..65535", port)
		}
	}
	return nil
}

// explainFlagError says what a duration should look like where the flag
// package says only "invalid value "10" for flag -drain: parse error".
func explainFlagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	rest, ok := strings.CutSuffix(msg, ": parse error")
	if i := strings.LastIndex(rest, " -"); ok && i >= 0 {
		if f := fs.Lookup(rest[i+2:]); f != nil {
			if g, ok := f.Value.(flag.Getter); ok && isDuration(g.Get()) {
				return rest + ": want a duration such as 500ms, 30s or 2m"
			}
		}
	}
	return msg
}

func isDuration(v any) bool { _, ok := v.(time.Duration); return ok }

// flagSet reports whether the flag called name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// httpLimits bound what one connection to --http may hold: without an idle
// timeout a keep-alive connection (a scraper's, or anyone's) stays open
// for ever, and enough of them exhaust the descriptors the rendezvous port
// needs too. A variable so that tests can shorten it.
var httpLimits = struct {
	header, read, write, idle time.Duration
	headerBytes               int
}{header: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: time.Minute, headerBytes: 16 << 10}
