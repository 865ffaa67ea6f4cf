//go:build linux

package nslab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/fnmesh/fnmesh/internal/proc"
)

// Host is a lab node: a network namespace with one address. Programs run in
// it with Command.
type Host struct {
	name   string
	ns     string
	addr   netip.Addr
	router *Router // the router whose LAN the host is on; nil for a public host
}

// Name returns the node name the host was added with.
func (h *Host) Name() string { return h.name }

// Namespace returns the name of the host's network namespace.
func (h *Host) Namespace() string { return h.ns }

// Addr returns the host's address: its public address for a public host or
// a router (the router's WAN address), its private one for a host on a LAN.
func (h *Host) Addr() netip.Addr { return h.addr }

// Router returns the router whose LAN the host is on, or nil for a public
// host or a router.
func (h *Host) Router() *Router { return h.router }

// Command returns a command that runs prog with args inside the host's
// namespace (through "ip netns exec", which execs prog in place, so that the
// process Cancel kills is prog itself). The context bounds the process: when
// it ends, the process gets SIGTERM and, 2 s later, SIGKILL. The process is
// also killed if the calling process dies first (a test binary killed, or
// panicking on its -timeout, closes no lab): it gets SIGKILL when the thread
// that started it exits.
func (h *Host) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, prog}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(sigterm) }
	proc.DieWithParent(cmd)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Output runs prog with args inside the host's namespace and returns its
// standard output and standard error together; a failure's error includes
// them.
func (h *Host) Output(ctx context.Context, prog string, args ...string) (string, error) {
	out, err := h.Command(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nslab: %s: %s %s: %w: %s", h.name, prog, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Router is a NAT router: a host whose WAN interface is on the lab internet
// and whose LAN bridge connects the hosts added to it.
type Router struct {
	Host
	lab  *Lab
	nat  NAT
	lan  netip.Prefix
	gw   netip.Addr
	next netip.Addr // last address handed out on the LAN
	nlan int        // LAN ports created
}

// NAT returns the router's behaviour.
func (r *Router) NAT() NAT { return r.nat }

// LAN returns the router's LAN prefix.
func (r *Router) LAN() netip.Prefix { return r.lan }

// Gateway returns the router's address on its LAN.
func (r *Router) Gateway() netip.Addr { return r.gw }

// AddHost adds a host called name on the router's LAN, at the next free LAN
// address, with routes to the lab internet through the router.
func (r *Router) AddHost(ctx context.Context, name string) (*Host, error) {
	r.lab.mu.Lock()
	addr := r.next.Next()
	if !r.lan.Contains(addr) || addr == lastAddr(r.lan) {
		r.lab.mu.Unlock()
		return nil, fmt.Errorf("nslab: router %s: LAN %s is full", r.name, r.lan)
	}
	r.next = addr
	r.nlan++
	port := fmt.Sprintf("l%d", r.nlan)
	r.lab.mu.Unlock()
	if err := r.lab.claim(addr); err != nil {
		return nil, err
	}
	ns, err := r.lab.addNamespace(ctx, name)
	if err != nil {
		return nil, err
	}
	steps := [][]string{
		{"-n", ns, "link", "add", "name", "eth0", "type", "veth", "peer", "name", port, "netns", r.ns},
		{"-n", r.ns, "link", "set", port, "master", "lan"},
		{"-n", r.ns, "link", "set", port, "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, r.lan.Bits()).String(), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, p := range internetPrefixes {
		steps = append(steps, []string{"-n", ns, "route", "add", p.String(), "via", r.gw.String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, fmt.Errorf("nslab: host %s behind %s: %w", name, r.name, err)
		}
	}
	return &Host{name: name, ns: ns, addr: addr, router: r}, nil
}

// Conntrack returns the router's connection-tracking table, for diagnostics
// when a test fails (from the conntrack tool if installed, else from
// /proc/net/nf_conntrack).
func (r *Router) Conntrack(ctx context.Context) string {
	if _, err := exec.LookPath("conntrack"); err == nil {
		out, _ := r.Output(ctx, "conntrack", "-L")
		return out
	}
	out, _ := r.Output(ctx, "cat", "/proc/net/nf_conntrack")
	return out
}

// Ruleset returns the router's nftables ruleset as nft lists it.
func (r *Router) Ruleset(ctx context.Context) string {
	out, _ := r.Output(ctx, "nft", "list", "ruleset")
	return out
}

// lastAddr returns the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
