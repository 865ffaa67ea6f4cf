package netsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// ErrNetworkClosed is returned (wrapped, together with net.ErrClosed) by every
// call on an Internet after Close, and on a Host after Host.Close.
var ErrNetworkClosed = errors.New("netsim: network closed")

// errInvalid is returned by methods called on a nil or zero value instead
// of one made by New, AddHost, AddNAT, ListenTCP, DialTCP or ListenUDP.
var errInvalid = fmt.Errorf("netsim: use of a value not created by this package: %w", syscall.EINVAL)

// errNilContext is the error of a socket call given a nil context.
var errNilContext = fmt.Errorf("netsim: nil context: %w", syscall.EINVAL)

// timeoutError is what a dial whose context deadline expired returns, like the
// net package's: a net.Error with Timeout() true that also matches
// context.DeadlineExceeded with errors.Is.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(err error) bool {
	return err == context.DeadlineExceeded || err == os.ErrDeadlineExceeded
}

// canceledError is what a dial whose context was canceled returns; it matches
// context.Canceled with errors.Is, as the net package's error does.
type canceledError struct{}

func (canceledError) Error() string     { return "operation was canceled" }
func (canceledError) Is(err error) bool { return err == context.Canceled }
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return timeoutError{}
	}
	return canceledError{}
}

// closedError is net.ErrClosed that also says which network was closed.
type closedError struct{ what string }

func (e closedError) Error() string { return "use of closed network connection (" + e.what + ")" }
func (e closedError) Is(err error) bool {
	return err == net.ErrClosed || err == ErrNetworkClosed
}

// errno wraps a system error number as the OS would report it for syscall.
func errno(syscallName string, n syscall.Errno) error {
	return &os.SyscallError{Syscall: syscallName, Err: n}
}

// opError builds a *net.OpError as the net package does for TCP or UDP.
func opError(op, network string, src, dst netip.AddrPort, err error) error {
	e := &net.OpError{Op: op, Net: network, Err: err}
	if src.IsValid() {
		e.Source = sockaddr(network, src)
	}
	if dst.IsValid() {
		e.Addr = sockaddr(network, dst)
	}
	return e
}

func sockaddr(network string, ap netip.AddrPort) net.Addr {
	if network == "udp" {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

func badAddr(what string, ap any) error {
	return fmt.Errorf("netsim: %s %v: %w", what, ap, errno("bind", syscall.EADDRNOTAVAIL))
}
