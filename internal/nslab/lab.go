//go:build linux

package nslab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sync"
	"time"
)

// DefaultPrefix starts the name of every namespace a lab creates unless
// WithPrefix says otherwise.
const DefaultPrefix = "fnlab"

// Internet prefixes: the documentation ranges the lab's public hosts and
// router WAN interfaces take their addresses from.
var (
	InternetA = netip.MustParsePrefix("203.0.113.0/24")
	InternetB = netip.MustParsePrefix("198.51.100.0/24")
	// LANs is the benchmarking range every router LAN must lie within.
	LANs = netip.MustParsePrefix("198.18.0.0/15")
)

// internetPrefixes lists the prefixes routed over the lab internet.
var internetPrefixes = []netip.Prefix{InternetA, InternetB}

// Option configures New.
type Option func(*config)

type config struct {
	prefix string
}

// WithPrefix sets the prefix of the lab's namespace names (default
// DefaultPrefix). It must be 1 to 16 lowercase letters or digits.
func WithPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

var nodeName = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Lab is one NAT lab: an internet bridge namespace and the hosts and routers
// attached to it. Its methods are safe for concurrent use. Close removes
// everything it created.
type Lab struct {
	id   string // "<prefix>-<pid>-<random>", the start of every namespace name
	inet string // namespace holding the internet bridge

	mu     sync.Mutex
	nss    []string        // namespaces created, in creation order
	nodes  map[string]bool // node names in use
	used   map[netip.Addr]bool
	ports  int // internet bridge ports created
	closed bool
	// adding counts the "ip netns add" calls in progress (added to under mu
	// while !closed): Close waits for them, so that a namespace created
	// while it runs is deleted with the others instead of left behind.
	adding sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// bridge is the name of the internet bridge inside the lab's inet namespace.
const bridge = "br0"

var (
	openMu sync.Mutex
	open   = map[*Lab]bool{}
)

// New creates a lab with an empty internet: a namespace holding a bridge.
// On error everything created so far is removed.
func New(ctx context.Context, opts ...Option) (_ *Lab, err error) {
	cfg := config{prefix: DefaultPrefix}
	for _, o := range opts {
		o(&cfg)
	}
	if !nodeName.MatchString(cfg.prefix) {
		return nil, fmt.Errorf("nslab: prefix %q: want 1 to 16 lowercase letters or digits", cfg.prefix)
	}
	l, err := newLab(cfg.prefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	l.inet, err = l.addNamespace(ctx, "inet")
	if err != nil {
		return nil, err
	}
	if err := ipn(ctx, l.inet, "link", "add", "name", bridge, "type", "bridge"); err != nil {
		return nil, fmt.Errorf("nslab: internet bridge: %w", err)
	}
	if err := ipn(ctx, l.inet, "link", "set", bridge, "up"); err != nil {
		return nil, fmt.Errorf("nslab: internet bridge: %w", err)
	}
	return l, nil
}

// newLab returns an empty lab with a new id, registered for CloseAll.
func newLab(prefix string) (*Lab, error) {
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("nslab: random lab id: %w", err)
	}
	pid := os.Getpid()
	id := fmt.Sprintf("%s-%d-%s", prefix, pid, hex.EncodeToString(rnd[:]))
	// With the process's start time in the name, CleanStale tells this
	// process from a later one that reuses its pid.
	if start, err := processStart(pid); err == nil {
		id = fmt.Sprintf("%s-%d-%s-%s", prefix, pid, start, hex.EncodeToString(rnd[:]))
	}
	l := &Lab{
		id:    id,
		nodes: map[string]bool{},
		used:  map[netip.Addr]bool{},
	}
	openMu.Lock()
	open[l] = true
	openMu.Unlock()
	return l, nil
}

// ID returns the prefix shared by the names of all the lab's namespaces:
// "<prefix>-<pid>-<start>-<random>", where <start> is the process's start
// time (in clock ticks after boot), which CleanStale compares.
func (l *Lab) ID() string { return l.id }

// addNamespace creates the namespace for node, with its loopback up.
func (l *Lab) addNamespace(ctx context.Context, node string) (string, error) {
	ns, err := l.createNamespace(ctx, node)
	if err != nil {
		return "", fmt.Errorf("nslab: node %s: %w", node, err)
	}
	return ns, nil
}

// createNamespace creates the namespace for node, with its loopback up, and
// records it for Close (also when ctx ended during "ip netns add" but the
// namespace was created). Its errors do not name the node.
func (l *Lab) createNamespace(ctx context.Context, node string) (string, error) {
	if !nodeName.MatchString(node) {
		return "", fmt.Errorf("name %q: want 1 to 16 lowercase letters or digits", node)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errors.New("lab is closed")
	}
	if l.nodes[node] {
		l.mu.Unlock()
		return "", errors.New("already exists")
	}
	l.nodes[node] = true
	ns := l.id + "-" + node
	l.adding.Add(1)
	l.mu.Unlock()

	err := ip(ctx, "netns", "add", ns)
	if testHookNamespaceAdded != nil {
		testHookNamespaceAdded(ns)
	}
	l.mu.Lock()
	// An add cut short by the end of ctx may have created the namespace
	// before ip was killed: Close deletes it if it is there.
	if err == nil || ctx.Err() != nil && namespaceExists(ns) {
		l.nss = append(l.nss, ns)
	}
	l.mu.Unlock()
	l.adding.Done()
	if err != nil {
		return "", err
	}
	if err := ipn(ctx, ns, "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	return ns, nil
}

// testHookNamespaceAdded, if set (by tests), is called after each
// "ip netns add" of a lab returns.
var testHookNamespaceAdded func(ns string)

// namespaceExists reports whether a named namespace ns exists.
func namespaceExists(ns string) bool {
	_, err := os.Stat(netnsDir + "/" + ns)
	return err == nil
}

// claim reserves addr for one interface of the lab.
func (l *Lab) claim(addr netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used[addr] {
		return fmt.Errorf("nslab: address %s already in use in the lab", addr)
	}
	l.used[addr] = true
	return nil
}

// attachInternet connects namespace ns to the internet bridge through a veth
// pair whose end in ns is called ifname and has address addr. Routes to both
// internet prefixes are on-link: every attached node shares one segment.
func (l *Lab) attachInternet(ctx context.Context, ns, ifname string, addr netip.Addr) error {
	if !InternetA.Contains(addr) && !InternetB.Contains(addr) {
		return fmt.Errorf("nslab: public address %s is outside the lab internet (%s, %s)", addr, InternetA, InternetB)
	}
	if err := l.claim(addr); err != nil {
		return err
	}
	l.mu.Lock()
	l.ports++
	port := fmt.Sprintf("p%d", l.ports)
	l.mu.Unlock()
	steps := [][]string{
		{"-n", ns, "link", "add", "name", ifname, "type", "veth", "peer", "name", port, "netns", l.inet},
		{"-n", l.inet, "link", "set", port, "master", bridge},
		{"-n", l.inet, "link", "set", port, "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", ifname},
		{"-n", ns, "link", "set", ifname, "up"},
	}
	for _, p := range internetPrefixes {
		if !p.Contains(addr) {
			steps = append(steps, []string{"-n", ns, "route", "add", p.String(), "dev", ifname})
		}
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("nslab: attach %s to the internet: %w", addr, err)
		}
	}
	return nil
}

// AddHost adds a public host called name on the lab internet, at addr (in
// InternetA or InternetB).
func (l *Lab) AddHost(ctx context.Context, name string, addr netip.Addr) (*Host, error) {
	ns, err := l.addNamespace(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := l.attachInternet(ctx, ns, "eth0", addr); err != nil {
		return nil, fmt.Errorf("nslab: host %s: %w", name, err)
	}
	return &Host{name: name, ns: ns, addr: addr}, nil
}

// AddRouter adds a NAT router called name with WAN address wan (on the lab
// internet) and a LAN lan (within LANs). The router takes the LAN's first
// address; hosts added with Router.AddHost take the following ones.
func (l *Lab) AddRouter(ctx context.Context, name string, nat NAT, wan netip.Addr, lan netip.Prefix) (*Router, error) {
	lan = lan.Masked()
	if !lan.IsValid() || lan.Bits() < LANs.Bits() || !LANs.Contains(lan.Addr()) || lan.Bits() > 30 {
		return nil, fmt.Errorf("nslab: router %s: LAN %s must be a /15 to /30 within %s", name, lan, LANs)
	}
	rules, err := nat.ruleset("wan")
	if err != nil {
		return nil, fmt.Errorf("nslab: router %s: %w", name, err)
	}
	ns, err := l.addNamespace(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := l.attachInternet(ctx, ns, "wan", wan); err != nil {
		return nil, fmt.Errorf("nslab: router %s: %w", name, err)
	}
	gw := lan.Addr().Next()
	if err := l.claim(gw); err != nil {
		return nil, fmt.Errorf("nslab: router %s: %w", name, err)
	}
	steps := [][]string{
		{"-n", ns, "link", "add", "name", "lan", "type", "bridge"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(gw, lan.Bits()).String(), "dev", "lan"},
		{"-n", ns, "link", "set", "lan", "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, fmt.Errorf("nslab: router %s: LAN: %w", name, err)
		}
	}
	if err := run(ctx, "", "ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return nil, fmt.Errorf("nslab: router %s: enable forwarding: %w", name, err)
	}
	if err := run(ctx, rules, "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("nslab: router %s: load %s ruleset: %w", name, nat, err)
	}
	return &Router{
		Host: Host{name: name, ns: ns, addr: wan},
		lab:  l, nat: nat, lan: lan, gw: gw, next: gw,
	}, nil
}

// Close kills every process still running in the lab's namespaces and
// deletes the namespaces, which removes their veth pairs, bridges and
// nftables rules with them. It is safe to call more than once and does not
// depend on any caller's context (it must run after a test's context ended).
func (l *Lab) Close() error {
	// A second caller (a test's cleanup racing a signal handler's CloseAll)
	// waits for the first to finish, so that no caller returns, and lets
	// the process exit, while namespaces are still being deleted.
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	// No namespace is added from here on; wait for those being added (a
	// test's goroutine still building the lab when a signal handler's
	// CloseAll runs) so that they are deleted too.
	l.adding.Wait()
	l.mu.Lock()
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()

	openMu.Lock()
	delete(open, l)
	openMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if err := deleteNamespace(ctx, nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CloseAll closes every lab this process has open. A test binary calls it
// from a signal handler so that an interrupted run leaves nothing behind.
func CloseAll() error {
	openMu.Lock()
	labs := make([]*Lab, 0, len(open))
	for l := range open {
		labs = append(labs, l)
	}
	openMu.Unlock()
	var errs []error
	for _, l := range labs {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
