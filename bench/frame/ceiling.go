//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The loopback TCP ceiling the exchange is compared with. The reference is
// measured between the worker processes themselves, on the very links the
// communicator then runs over (made by rendezvous.Join, TCP_NODELAY on),
// just before the benchmark: every rank sends n bytes to every other rank
// and receives n bytes from each, all at once, in 1 MiB writes and into a
// reused 1 MiB read buffer: the same kind of transfer as the shuffle's
// all-to-all, with nothing but the system calls. Its CPU time per byte is
// the least any exchange can spend.

// ioSize is the size of the raw transfer's writes and reads.
const ioSize = 1 << 20

// The two spans the raw transfer cycles through, in the source buffer and
// in each destination buffer: coldSpan is larger than any cache, as the
// exchange's data is (73 MB per peer in the Cylon benchmark): the same kind
// of transfer, memory to memory; hotSpan stays in cache, as iperf3's
// buffer does: the network stack alone, a higher ceiling.
const (
	coldSpan = 128 << 20
	hotSpan  = ioSize
)

// rawSample is one rank's side of one raw all-to-all.
type rawSample struct {
	Dur   time.Duration `json:"dur"`
	CPU   time.Duration `json:"cpu"`   // this process's user+system CPU time during it
	Bytes int64         `json:"bytes"` // bytes this rank sent
}

// rawAlltoall sends n bytes to every peer and reads n bytes from every
// peer, all links at once, after a one-byte barrier on every link, cycling
// through span bytes of source and of each destination buffer. links is
// indexed by rank (nil for this rank).
func rawAlltoall(links []net.Conn, n int64, span int) (rawSample, error) {
	src := make([]byte, span)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([][]byte, len(links))
	for r, c := range links {
		if c != nil {
			dst[r] = make([]byte, span)
			for i := 0; i < span; i += 4096 {
				dst[r][i] = 1 // fault the pages in before the clock starts
			}
		}
	}
	if err := linkBarrier(links); err != nil {
		return rawSample{}, err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		peers int64
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	t0, c0 := time.Now(), cpuTime()
	for r, c := range links {
		if c == nil {
			continue
		}
		peers++
		wg.Go(func() {
			for left, off := n, 0; left > 0; {
				if off+ioSize > span {
					off = 0
				}
				m, err := c.Write(src[off : off+int(min(ioSize, left))])
				left -= int64(m)
				off += m
				if err != nil {
					fail(fmt.Errorf("raw send to rank %d: %w", r, err))
					return
				}
			}
		})
		wg.Go(func() {
			buf := dst[r]
			for left, off := n, 0; left > 0; {
				if off+ioSize > span {
					off = 0
				}
				m, err := c.Read(buf[off : off+int(min(ioSize, left))])
				left -= int64(m)
				off += m
				if err != nil && left > 0 {
					fail(fmt.Errorf("raw receive from rank %d: %w", r, err))
					return
				}
			}
		})
	}
	wg.Wait()
	s := rawSample{Dur: time.Since(t0), CPU: cpuTime() - c0, Bytes: n * peers}
	return s, errors.Join(errs...)
}

// linkBarrier writes one byte to every peer and reads one from each.
func linkBarrier(links []net.Conn) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for r, c := range links {
		if c == nil {
			continue
		}
		wg.Go(func() {
			var b [1]byte
			_, err := c.Write(b[:])
			if err == nil {
				_, err = io.ReadFull(c, b[:])
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("barrier with rank %d: %w", r, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// measureCeiling times n bytes over one loopback TCP connection inside
// this process, one way and then both ways at once; best of three. It is a
// reference beside the ceiling measured between the workers.
func measureCeiling(n int64) ceiling {
	var best ceiling
	for range 3 {
		c := measureCeilingOnce(n)
		best.OneWay = max(best.OneWay, c.OneWay)
		best.BothWays = max(best.BothWays, c.BothWays)
	}
	return best
}

func measureCeilingOnce(n int64) ceiling {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ceiling{}
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return ceiling{}
	}
	defer a.Close()
	b, ok := <-accepted
	if !ok {
		return ceiling{}
	}
	defer b.Close()
	send := func(c net.Conn) {
		buf := make([]byte, ioSize)
		for left := n; left > 0; left -= int64(len(buf)) {
			if _, err := c.Write(buf[:min(int64(len(buf)), left)]); err != nil {
				return
			}
		}
	}
	recv := func(c net.Conn) {
		buf := make([]byte, ioSize) // not io.Discard, which reads 8 KiB at a time
		for left := n; left > 0; {
			m, err := c.Read(buf[:min(int64(len(buf)), left)])
			left -= int64(m)
			if err != nil {
				return
			}
		}
	}
	var out ceiling
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { recv(b) })
	send(a)
	wg.Wait()
	out.OneWay = float64(n) / time.Since(t0).Seconds()

	t0 = time.Now()
	wg.Go(func() { send(a) })
	wg.Go(func() { send(b) })
	wg.Go(func() { recv(a) })
	wg.Go(func() { recv(b) })
	wg.Wait()
	out.BothWays = float64(n) / time.Since(t0).Seconds()
	return out
}
