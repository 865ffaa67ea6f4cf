//go:build !linux

package punch

import "net/netip"

// checkNoListener does nothing where SO_REUSEPORT does not spread one
// port's inbound connections over several listeners as Linux does.
func checkNoListener(laddr netip.AddrPort) error { return nil }
