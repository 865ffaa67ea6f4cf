package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/fnmesh/fnmesh/punch"
	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSecret = "rendezvous command test secret, 40 bytes."

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesJobs(t *testing.T) {
	t.Setenv(secret.Env, testSecret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	type addrs struct {
		tcp  netip.AddrPort
		http net.Addr
	}
	up := make(chan addrs, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--punch-timeout", "2s"}, io.Discard, &logs,
			func(tcp netip.AddrPort, h net.Addr) { up <- addrs{tcp, h} })
	}()
	a := <-up

	jctx, jcancel := context.WithTimeout(ctx, 20*time.Second)
	defer jcancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := rendezvous.Join(jctx, a.tcp.String(), "cmd", 3, []byte(testSecret))
			if err == nil {
				m.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	resp, err := http.Get("http://" + a.http.String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), "fnmesh_rendezvous_joins_total 3\n")
	assert.Contains(t, string(body), "fnmesh_rendezvous_punch_attempts_total 3\n")

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code, "logs:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	assert.Contains(t, logs.String(), "rendezvous server listening")
	assert.Contains(t, logs.String(), "rendezvous server stopped")
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	tests := []struct {
		name string
		env  string
		args []string
		code int
		want string
	}{
		{"no secret", "", []string{"--listen", "127.0.0.1:0"}, 2, "no job secret: pass --secret-file or set FNMESH_SECRET"},
		{"missing secret file", testSecret, []string{"--secret-file", filepath.Join(dir, "nope")}, 2, "no such file"},
		{"empty secret file", "", []string{"--secret-file", empty}, 2, "is empty"},
		{"unknown flag", testSecret, []string{"--bogus"}, 2, "flag provided but not defined"},
		{"argument", testSecret, []string{"extra"}, 2, `unexpected argument "extra"`},
		{"zero timeout", testSecret, []string{"--punch-timeout", "0s"}, 2, "--punch-timeout must be positive"},
		{"sub-millisecond ping interval", testSecret, []string{"--ping-interval", "500us"}, 2, "--ping-interval of 500µs is under the protocol's unit"},
		{"sub-millisecond relay timeout", testSecret, []string{"--relay-timeout", "999us"}, 2, "--relay-timeout of 999µs is under the protocol's unit"},
		// Named alone: it said "--drain must not be negative and --max-conns must be positive".
		{"zero max-conns", testSecret, []string{"--max-conns", "0"}, 2, "rendezvous: --max-conns must be positive (leave it out for the default)\n"},
		{"negative max-conns", testSecret, []string{"--max-conns", "-5"}, 2, "rendezvous: --max-conns must be positive (leave it out for the default)\n"},
		{"negative drain", testSecret, []string{"--drain", "-1s"}, 2, "rendezvous: --drain -1s must not be negative\n"},
		{"bad log level", testSecret, []string{"--log-level", "loud"}, 2, "--log-level"},
		{"bad listen", testSecret, []string{"--listen", "256.0.0.1:1"}, 1, "cannot listen"},
		// A malformed address is bad usage, not a failure to listen.
		{"listen without port", testSecret, []string{"--listen", "7000"}, 2, `rendezvous: --listen "7000": want HOST:PORT, e.g. 0.0.0.0:7000 (address 7000: missing port in address)`},
		{"listen port out of range", testSecret, []string{"--listen", "127.0.0.1:99999"}, 2, `rendezvous: --listen "127.0.0.1:99999": port "99999" is not 0..65535`},
		{"listen port negative", testSecret, []string{"--listen", "127.0.0.1:-1"}, 2, `rendezvous: --listen "127.0.0.1:-1": port "-1" is not 0..65535`},
		{"http without port", testSecret, []string{"--listen", "127.0.0.1:0", "--http", "9100"}, 2, `rendezvous: --http "9100": want HOST:PORT, e.g. 127.0.0.1:9100 (address 9100: missing port in address)`},
		{"help", testSecret, []string{"-h"}, 0, "usage: rendezvous [--listen HOST:PORT]"},
		{"bad duration", testSecret, []string{"--drain", "10"}, 2, `rendezvous: invalid value "10" for flag -drain: want a duration such as 500ms, 30s or 2m`},
		{"bad count", testSecret, []string{"--max-conns", "many"}, 2, `rendezvous: invalid value "many" for flag -max-conns: parse error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(secret.Env, tt.env)
			var out syncBuffer
			code := run(context.Background(), tt.args, io.Discard, &out, nil)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, out.String(), tt.want)
			if tt.code == 2 {
				// One line, and for a flag that does not parse a
				// pointer to -h: not the whole help, nor a log line
				// first (the open-file limit's was printed before
				// "no job secret").
				lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				assert.True(t, strings.HasPrefix(lines[0], "rendezvous: "), "%q", out.String())
				if len(lines) > 1 {
					assert.Equal(t, []string{"Run 'rendezvous -h' for its flags."}, lines[1:])
				}
			}
		})
	}
}

// TestPortInUse: a taken port says so and what to do, and exits 1.
func TestPortInUse(t *testing.T) {
	t.Setenv(secret.Env, testSecret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var out syncBuffer
	assert.Equal(t, 1, run(context.Background(), []string{"--listen", ln.Addr().String()}, io.Discard, &out, nil))
	assert.Contains(t, out.String(), "the port is taken (another rendezvous server?)")
	assert.Contains(t, out.String(), "choose another --listen port")
}

// TestHTTPIdleConnectionClosed: a keep-alive connection to --http that
// goes idle is closed (it held a descriptor for ever).
func TestHTTPIdleConnectionClosed(t *testing.T) {
	t.Setenv(secret.Env, testSecret)
	idle := httpLimits.idle
	httpLimits.idle = 200 * time.Millisecond
	t.Cleanup(func() { httpLimits.idle = idle })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	up := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-udp"}, io.Discard, &logs,
			func(_ netip.AddrPort, h net.Addr) { up <- h })
	}()
	h := <-up
	require.Eventually(t, func() bool { // 503 until Serve has started
		resp, err := http.Get("http://" + h.String() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 5*time.Millisecond)
	c, err := net.DialTimeout("tcp", h.String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: rendezvous\r\n\r\n"))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()

	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the idle connection is still open: %v", err)
	cancel()
	assert.Equal(t, 0, <-exit, "logs:\n%s", logs.String())
}

// startBinary builds the command and runs it on loopback with --http and
// args, its secret from a file. It returns the process, its stderr lines
// (the channel is closed when stderr is) and the TCP and HTTP addresses it
// reported.
func startBinary(t *testing.T, args ...string) (cmd *exec.Cmd, lines <-chan string, addr, httpAddr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the build of the rendezvous binary")
	}
	bin := filepath.Join(t.TempDir(), "rendezvous")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	secretFile := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600))
	cmd = exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--secret-file", secretFile}, args...)...)
	cmd.Env = append(os.Environ(), secret.Env+"=")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ch := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	re := regexp.MustCompile(`tcp=(127\.0\.0\.1:\d+) .*http=(127\.0\.0\.1:\d+)`)
	for addr == "" {
		select {
		case line, ok := <-ch:
			require.True(t, ok, "server exited before listening")
			if m := re.FindStringSubmatch(line); m != nil {
				addr, httpAddr = m[1], m[2]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("server did not report its address")
		}
	}
	return cmd, ch, addr, httpAddr
}

// TestBinarySIGTERM builds the command, runs it, and checks that SIGTERM
// tells a waiting worker and shuts the server down with status 0.
func TestBinarySIGTERM(t *testing.T) {
	cmd, lines, addr, httpAddr := startBinary(t, "--drain", "1s")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	joinErr := make(chan error, 1)
	go func() {
		_, err := rendezvous.Join(ctx, addr, "sigterm", 2, []byte(testSecret))
		joinErr <- err
	}()
	require.Eventually(t, func() bool { // the worker has joined and waits
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "fnmesh_rendezvous_members 1\n")
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	err := <-joinErr
	require.Error(t, err)
	assert.True(t, errors.Is(err, &rendezvous.Error{Code: rendezvous.CodeShutdown}), "Join error: %v", err)
	var rest []string
	for line := range lines {
		rest = append(rest, line)
	}
	require.NoError(t, cmd.Wait(), "logs:\n%s", strings.Join(rest, "\n"))
	assert.Contains(t, strings.Join(rest, "\n"), "rendezvous server stopped")
}

// TestBinarySecondSignalStopsAtOnce: a graceful shutdown may take a while
// (--drain for relays, 5 s for the HTTP server's connections); a second
// SIGTERM or SIGINT ends it at once, as an operator pressing Ctrl-C again
// expects. It was ignored: with one idle connection to --http the server
// took the full 5 s after two SIGTERMs 300 ms apart.
func TestBinarySecondSignalStopsAtOnce(t *testing.T) {
	cmd, lines, _, httpAddr := startBinary(t, "--no-udp")
	go func() {
		for range lines { // drain stderr so that the server never blocks on it
		}
	}()
	// An idle connection: the HTTP server's Shutdown waits up to 5 s for it.
	// It must have been accepted before the signal (a connection still in
	// the listen queue is dropped with the listener). The server accepts in
	// the order of the listen queue and tracks each connection before it
	// accepts the next: once a request on a connection dialed after it has
	// been answered, it has been accepted, however loaded the machine.
	c, err := net.Dial("tcp", httpAddr)
	require.NoError(t, err)
	defer c.Close()
	after := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := after.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		t.Fatalf("the server exited (%v) before the HTTP connection's 5 s: this test shows nothing", err)
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "a forced stop is not a clean one")
		assert.Less(t, time.Since(start), 2*time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGTERM did not stop the server")
	}
}

// TestSecretFromPipeInterrupted: a --secret-file that is a pipe nobody
// writes to no longer makes the server deaf to SIGINT and SIGTERM: run
// returns 1 (not the usage status) with one line when ctx ends.
func TestSecretFromPipeInterrupted(t *testing.T) {
	t.Setenv(secret.Env, "")
	fifo := filepath.Join(t.TempDir(), "secret")
	if out, err := exec.Command("mkfifo", fifo).CombinedOutput(); err != nil {
		t.Skipf("no named pipe here: mkfifo: %v %s", err, out)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--secret-file", fifo}, io.Discard, &out, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel(errors.New("terminated signal received")) // as signal.NotifyContext does
	select {
	case code := <-done:
		assert.Equal(t, 1, code)
		assert.Equal(t, "rendezvous: secret: reading "+fifo+": terminated signal received\n", out.String())
	case <-time.After(5 * time.Second):
		t.Fatal("the server went on reading the secret after the signal")
	}
}

// TestUDPBoundWhereTCPIs: the STUN socket is bound to the address and port
// the TCP listener got (not to --listen's host name resolved again), and
// answers there.
func TestUDPBoundWhereTCPIs(t *testing.T) {
	t.Setenv(secret.Env, testSecret)
	for _, listen := range []string{"localhost:0", "127.0.0.1:0"} {
		t.Run(listen, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			up := make(chan netip.AddrPort, 1)
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, []string{"--listen", listen}, io.Discard, &logs, func(tcp netip.AddrPort, _ net.Addr) { up <- tcp })
			}()
			var tcp netip.AddrPort
			select {
			case tcp = <-up:
			case code := <-exit:
				t.Fatalf("run exited %d: %s", code, logs.String())
			}
			m := regexp.MustCompile(`tcp=(\S+) udp=(\S+)`).FindStringSubmatch(logs.String())
			require.NotNil(t, m, "logs:\n%s", logs.String())
			assert.Equal(t, tcp.String(), m[1])
			assert.Equal(t, m[1], m[2], "UDP bound elsewhere than TCP")

			pc, err := net.ListenPacket("udp", net.JoinHostPort(tcp.Addr().String(), "0"))
			require.NoError(t, err)
			defer pc.Close()
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			defer scancel()
			got, err := punch.DiscoverPacket(sctx, pc, tcp)
			require.NoError(t, err)
			assert.Equal(t, pc.LocalAddr().(*net.UDPAddr).Port, int(got.Port()))
			cancel()
			assert.Equal(t, 0, <-exit, "logs:\n%s", logs.String())
		})
	}
}

// TestVersion: --version needs no secret and prints one line on stdout.
func TestVersion(t *testing.T) {
	t.Setenv(secret.Env, "")
	var stdout, stderr syncBuffer
	require.Equal(t, 0, run(context.Background(), []string{"--version"}, &stdout, &stderr, nil))
	out := stdout.String()
	assert.True(t, strings.HasPrefix(out, "rendezvous "), out)
	assert.Contains(t, out, runtime.Version())
	assert.True(t, strings.HasSuffix(out, fmt.Sprintf(", rendezvous protocol %d\n", rendezvous.ProtoVersion)), out)
	assert.Equal(t, 1, strings.Count(out, "\n"), out)
	assert.Empty(t, stderr.String())
}
