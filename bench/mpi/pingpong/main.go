//go:build unix

// Command pingpong measures the floor under fnmesh's small-message latency:
// an 8-byte ping-pong between two processes over loopback TCP, with no
// framing, read three ways:
//
//   - direct: the waiting goroutine reads the connection itself (Go's
//     netpoller parks it until data arrives);
//   - handoff: a reader goroutine reads and hands each message to the
//     waiting goroutine over a channel, the shape of a communicator with
//     one reader goroutine per link;
//   - spin: the waiting goroutine polls the socket with non-blocking reads
//     and never parks, the way MPI's TCP transport busy-polls.
//
// Usage: go run ./bench/mpi/pingpong [-iters N] [-size B] [direct|handoff|spin ...]
// It prints the one-way time (half the round trip) of each mode, in turn.
// Compare with `fnmesh bench -np 2 -ops latency -min 8 -max 8` and
// bench/mpi/osu.c's latency at the same moment.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	iters := flag.Int("iters", 20000, "timed round trips (after 1000 warm-up)")
	size := flag.Int("size", 8, "message size in bytes")
	peer := flag.String("peer", "", "internal: run as the echoing peer, connecting to this address")
	flag.Parse()
	if *iters < 1 || *size < 1 {
		fmt.Fprintln(os.Stderr, "pingpong: -iters and -size must be at least 1")
		os.Exit(2)
	}
	modes := flag.Args()
	if len(modes) == 0 {
		modes = []string{"direct", "handoff", "spin"}
	}
	if *peer != "" {
		if err := echo(*peer, modes[0], *size, *iters+1000); err != nil {
			fmt.Fprintln(os.Stderr, "pingpong peer:", err)
			os.Exit(1)
		}
		return
	}
	for _, mode := range modes {
		us, err := measure(mode, *size, *iters)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pingpong %s: %v\n", mode, err)
			os.Exit(1)
		}
		fmt.Printf("%-8s %d B: %7.2f us one way\n", mode, *size, us)
	}
}

// reader reads whole messages from a connection in one of the three modes.
type reader struct {
	c    *net.TCPConn
	mode string
	ch   chan []byte // handoff
	errc chan error  // handoff
}

func newReader(c *net.TCPConn, mode string, size int) (*reader, error) {
	r := &reader{c: c, mode: mode}
	switch mode {
	case "direct", "spin":
	case "handoff":
		r.ch, r.errc = make(chan []byte, 16), make(chan error, 1)
		go func() {
			for {
				b := make([]byte, size)
				if _, err := io.ReadFull(c, b); err != nil {
					r.errc <- err
					close(r.ch)
					return
				}
				r.ch <- b
			}
		}()
	default:
		return nil, fmt.Errorf("unknown mode %q (direct, handoff, spin)", mode)
	}
	return r, nil
}

func (r *reader) read(b []byte) error {
	switch r.mode {
	case "handoff":
		m, ok := <-r.ch
		if !ok {
			return <-r.errc
		}
		copy(b, m)
		return nil
	case "spin":
		rc, err := r.c.SyscallConn()
		if err != nil {
			return err
		}
		for got := 0; got < len(b); {
			var n int
			var rerr error
			if err := rc.Read(func(fd uintptr) bool {
				n, rerr = syscall.Read(int(fd), b[got:])
				return true // never park in the netpoller
			}); err != nil {
				return err
			}
			switch {
			case errors.Is(rerr, syscall.EAGAIN):
			case rerr != nil:
				return rerr
			case n == 0:
				return io.ErrUnexpectedEOF
			default:
				got += n
			}
		}
		return nil
	default:
		_, err := io.ReadFull(r.c, b)
		return err
	}
}

func measure(mode string, size, iters int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, "-peer", ln.Addr().String(), "-size", fmt.Sprint(size), "-iters", fmt.Sprint(iters), mode)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		cmd.Process.Kill()
		return 0, err
	}
	defer conn.Close()
	c := conn.(*net.TCPConn)
	r, err := newReader(c, mode, size)
	if err != nil {
		return 0, err
	}
	b := make([]byte, size)
	var t0 time.Time
	for i := range iters + 1000 {
		if i == 1000 {
			t0 = time.Now()
		}
		if _, err := c.Write(b); err != nil {
			return 0, err
		}
		if err := r.read(b); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t0)) / float64(time.Microsecond) / float64(2*iters), nil
}

// echo is the peer: it sends back every message it receives.
func echo(addr, mode string, size, n int) error {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := conn.(*net.TCPConn)
	r, err := newReader(c, mode, size)
	if err != nil {
		return err
	}
	b := make([]byte, size)
	for range n {
		if err := r.read(b); err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
	}
	return nil
}
