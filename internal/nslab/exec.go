//go:build linux

package nslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const sigterm = syscall.SIGTERM

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// Check reports why this machine cannot build a lab, or nil if it can: it
// needs root, ip and nft, and the right to create a network namespace (which
// it tries, with a namespace it removes at once). The probe namespace is
// created as the one node of a lab of its own, so that CloseAll (a signal
// handler's) removes it too if the process is stopped while Check runs.
func Check(ctx context.Context) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("nslab: needs root to create network namespaces and nftables rules")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("nslab: %s not found: install iproute2 and nftables (scripts/install-test-deps.sh)", tool)
		}
	}
	// Unique per call (a lab id): two Checks at once must not trip over
	// (or delete) each other's probe.
	l, err := newLab(DefaultPrefix)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("nslab: remove the probe namespace: %w", cerr)
		}
	}()
	probe, err := l.createNamespace(ctx, "probe")
	if err != nil {
		return fmt.Errorf("nslab: cannot create a network namespace: %w", err)
	}
	if err := run(ctx, "table ip probe {\n}\n", "ip", "netns", "exec", probe, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nslab: nftables does not work in a network namespace: %w", err)
	}
	return nil
}

// CleanStale deletes the namespaces a lab with this prefix left behind when
// its process was killed before it could close the lab: those whose name
// carries the pid of a process that is no longer running (gone, or a zombie
// nobody reaped), or, when the name records the process's start time (see
// Lab.ID), of a process that started at another time (a reused pid). It
// returns the names it deleted. Namespaces of running processes (other tests
// running at the same time) are left alone.
func CleanStale(ctx context.Context, prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nslab: list namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		if !stale(e.Name(), prefix) {
			continue
		}
		if err := deleteNamespace(ctx, e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

// stale reports whether namespace name was made by a lab with this prefix
// whose process no longer runs. Names are "<prefix>-<pid>-<start>-<random>-
// <node>" (<start> as processStart returns it), or, from before the start
// time was recorded, "<prefix>-<pid>-<random>-<node>".
func stale(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return false
	}
	fields := strings.Split(rest, "-")
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return false
	}
	start, err := processStart(pid)
	if errors.Is(err, errNotRunning) {
		return true // gone or a zombie
	}
	if err != nil {
		return false // unknown: leave it
	}
	if len(fields) == 4 && isDigits(fields[1]) {
		return fields[1] != start
	}
	return false
}

// isDigits reports whether s is a non-empty string of decimal digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// errNotRunning is processStart's error for a process that is gone or a
// zombie.
var errNotRunning = errors.New("not running")

// processStart returns the start time of process pid (field 22 of
// /proc/<pid>/stat: clock ticks after boot, in decimal), which tells a pid's
// processes apart when pids are reused. It fails with errNotRunning if the
// process does not exist or is a zombie (dead, but not reaped by its parent:
// PID 1 of some containers and VMs reaps no orphans).
func processStart(pid int) (string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("process %d: %w", pid, errNotRunning)
	}
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	// The fields from the state on follow the command name in
	// parentheses, which may itself contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("process %d: malformed /proc/%d/stat", pid, pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	const state, starttime = 0, 19 // fields 3 and 22 of the file
	if len(fields) <= starttime || !isDigits(fields[starttime]) {
		return "", fmt.Errorf("process %d: malformed /proc/%d/stat", pid, pid)
	}
	if fields[state] == "Z" || fields[state] == "X" {
		return "", fmt.Errorf("process %d: %w", pid, errNotRunning)
	}
	return fields[starttime], nil
}

// killRounds bounds the rounds in which deleteNamespace kills the processes
// of a namespace; killPause is the pause after a round that killed some.
const (
	killRounds = 50
	killPause  = 10 * time.Millisecond
)

// deleteNamespace kills every process in ns and deletes it. It kills in
// rounds until none is left (at most killRounds): a process forked by one
// being killed after the round listed them would otherwise run on in the
// namespace, nameless once deleted, keeping its veths and nftables rules.
func deleteNamespace(ctx context.Context, ns string) error {
	for range killRounds {
		killed := false
		for _, pid := range pidsIn(ctx, ns) {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = true
			}
		}
		if !killed || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(killPause):
		}
	}
	if err := ip(ctx, "netns", "del", ns); err != nil {
		return fmt.Errorf("nslab: delete namespace %s: %w", ns, err)
	}
	return nil
}

// pidsIn returns the processes in namespace ns and those on their way into
// it: an "ip netns exec ns prog" that has not entered it yet, which
// "ip netns pids" cannot see and which would otherwise enter the namespace
// after it lost its name and run on unseen. The command lines are read
// first: a process that execs prog (and so loses that command line) has
// entered the namespace by then, and stays there for "ip netns pids".
func pidsIn(ctx context.Context, ns string) []int {
	var pids []int
	entering := []byte("\x00netns\x00exec\x00" + ns + "\x00")
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid <= 0 {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && bytes.Contains(cmdline, entering) {
				pids = append(pids, pid)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// ip runs the ip command with args.
func ip(ctx context.Context, args ...string) error { return run(ctx, "", "ip", args...) }

// ipn runs the ip command with args inside namespace ns.
func ipn(ctx context.Context, ns string, args ...string) error {
	return run(ctx, "", "ip", append([]string{"-n", ns}, args...)...)
}

// run runs prog with args, feeding it stdin, and returns an error that
// includes its output when it fails.
func run(ctx context.Context, stdin, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
