package punch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// checkNoListener fails if a listening socket already covers laddr's port.
// Linux lets any number of SO_REUSEPORT listeners of one user share a port
// and spreads inbound connections among them, so a second Port (or another
// program of the same user) asked for a port in use would open without
// error and take a share of the first one's peers, who would fail its
// handshake as the wrong rank. A socket with SO_REUSEADDR alone can bind
// next to the port's connections and TIME_WAIT entries but not next to a
// listener on an overlapping address (nor next to a socket bound without
// SO_REUSEADDR): binding one (never listening on it) finds out. The zero
// AddrPort and "::" are checked as the dual-stack socket ListenTCP opens on
// them. A port that a program holds without SO_REUSEPORT (or that a socket
// of another user holds) fails here just as the listen itself would; a
// second probe, with SO_REUSEPORT too, tells the two cases apart for the
// error, as it binds only next to sockets of this user that set it.
func checkNoListener(laddr netip.AddrPort) error {
	if laddr.Port() == 0 {
		return nil
	}
	addr := laddr.Addr().Unmap()
	if !addr.IsValid() {
		addr = netip.IPv6Unspecified()
	}
	probe := func(reusePort bool) error {
		err := bindProbe(addr, laddr.Port(), reusePort)
		if errors.Is(err, unix.EAFNOSUPPORT) && addr == netip.IPv6Unspecified() {
			err = bindProbe(netip.IPv4Unspecified(), laddr.Port(), reusePort) // no IPv6 on this system
		}
		return err
	}
	err := probe(false)
	if errors.Is(err, unix.EADDRINUSE) {
		if probe(true) == nil {
			return fmt.Errorf("another socket of this user holds port %d with SO_REUSEPORT "+
				"(a listener there would share the port's inbound connections): %w", laddr.Port(), err)
		}
		return fmt.Errorf("another socket holds port %d without sharing it (no SO_REUSEPORT, or another user's): %w",
			laddr.Port(), err)
	}
	if err != nil {
		return fmt.Errorf("checking port %d for another listener: %w", laddr.Port(), err)
	}
	return nil
}

// bindProbe binds a TCP socket with SO_REUSEADDR, and SO_REUSEPORT if
// reusePort, to addr:port and closes it (it never listens, so it never
// joins a listener's SO_REUSEPORT group).
func bindProbe(addr netip.Addr, port uint16, reusePort bool) error {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(port), Addr: addr.As16()}
	if addr.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(port), Addr: addr.As4()}
	} else if zone := addr.Zone(); zone != "" {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			n, aerr := strconv.ParseUint(zone, 10, 32)
			if aerr != nil {
				return fmt.Errorf("zone %q: %w", zone, err)
			}
			ifi = &net.Interface{Index: int(n)}
		}
		sa.(*unix.SockaddrInet6).ZoneId = uint32(ifi.Index)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("setsockopt SO_REUSEPORT: %w", err)
		}
	}
	if family == unix.AF_INET6 && addr.IsUnspecified() {
		// Dual-stack, as Go's listener on "[::]:P" is.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fmt.Errorf("setsockopt IPV6_V6ONLY: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}
