//go:build linux

package nslab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// The lab tests run this test binary inside namespaces as a small network
// tool (the lab has no ping or netcat), selected by environment variables:
//
//	NSLAB_HELPER=serve NSLAB_LISTEN=ip:port,ip:port
//	    accept on each address; write the peer's address and close; print
//	    "ready" once listening.
//	NSLAB_HELPER=dial NSLAB_LOCAL=ip:port NSLAB_TARGETS=ip:port,... NSLAB_TIMEOUT=1s
//	    dial each target in turn from the same local port (reusable) and
//	    print one line per target: "ok <address the server saw>",
//	    "refused", "timeout" or "error <message>".
//	NSLAB_HELPER=wait NSLAB_TARGETS=ip:port NSLAB_TIMEOUT=10s
//	    try to connect every 20 ms until it works ("ok", exit 0) or the
//	    timeout passes (exit 1): waits for a server to listen.
//	NSLAB_HELPER=lab
//	    build a lab with one host, start "sleep 600" in it, print
//	    "<pid of sleep> <lab ID>" and wait to be killed: a test process
//	    that dies without closing its lab.
const helperEnv = "NSLAB_HELPER"

func helperMain(mode string) int {
	switch mode {
	case "serve":
		return helperServe(strings.Split(os.Getenv("NSLAB_LISTEN"), ","))
	case "dial", "wait":
		timeout, err := time.ParseDuration(os.Getenv("NSLAB_TIMEOUT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "NSLAB_TIMEOUT:", err)
			return 2
		}
		if mode == "wait" {
			return helperWait(os.Getenv("NSLAB_TARGETS"), timeout)
		}
		return helperDial(os.Getenv("NSLAB_LOCAL"), strings.Split(os.Getenv("NSLAB_TARGETS"), ","), timeout)
	case "lab":
		return helperLab()
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func helperLab() int {
	ctx := context.Background()
	lab, err := nslab.New(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h, err := lab.AddHost(ctx, "h", netip.MustParseAddr("203.0.113.9"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err, lab.Close())
		return 1
	}
	sleep := h.Command(ctx, "sleep", "600")
	if err := sleep.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err, lab.Close())
		return 1
	}
	fmt.Println(sleep.Process.Pid, lab.ID())
	select {} // until killed
}

func helperServe(addrs []string) int {
	for _, a := range addrs {
		ln, err := net.Listen("tcp4", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, c.RemoteAddr())
				c.Close()
			}
		}()
	}
	fmt.Println("ready")
	select {} // until killed
}

func reusable(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	return errors.Join(err, serr)
}

func helperDial(local string, targets []string, timeout time.Duration) int {
	laddr, err := net.ResolveTCPAddr("tcp4", local)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, target := range targets {
		d := net.Dialer{LocalAddr: laddr, Control: reusable}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c, err := d.DialContext(ctx, "tcp4", target)
		cancel()
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			fmt.Println("refused")
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			fmt.Println("timeout")
		case err != nil:
			fmt.Println("error", err)
		default:
			_ = c.SetDeadline(time.Now().Add(timeout))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				fmt.Println("error reading:", err)
			} else {
				fmt.Println("ok", strings.TrimSpace(line))
			}
		}
	}
	return 0
}

func helperWait(target string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp4", target, time.Second)
		if err == nil {
			c.Close()
			fmt.Println("ok")
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Println("error", err)
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
}
