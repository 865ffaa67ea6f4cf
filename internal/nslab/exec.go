//go:build linux

package nslab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

const sigterm = syscall.SIGTERM

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// Check reports why this machine cannot build a lab, or nil if it can: it
// needs root, ip and nft, and the right to create a network namespace (which
// it tries, with a namespace it removes at once).
func Check(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("nslab: needs root to create network namespaces and nftables rules")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("nslab: %s not found: install iproute2 and nftables (scripts/install-test-deps.sh)", tool)
		}
	}
	// Unique per call: two Checks at once must not trip over (or delete)
	// each other's probe.
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("nslab: random probe name: %w", err)
	}
	probe := fmt.Sprintf("%s-%d-%s-probe", DefaultPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	if err := ip(ctx, "netns", "add", probe); err != nil {
		return fmt.Errorf("nslab: cannot create a network namespace: %w", err)
	}
	defer ip(context.Background(), "netns", "del", probe) //nolint:errcheck // best effort; CleanStale catches leftovers
	if err := run(ctx, "table ip probe {\n}\n", "ip", "netns", "exec", probe, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nslab: nftables does not work in a network namespace: %w", err)
	}
	return nil
}

// CleanStale deletes the namespaces a lab with this prefix left behind when
// its process was killed before it could close the lab: those whose name
// carries the pid of a process that is no longer running. It returns the
// names it deleted. Namespaces of running processes (other tests running at
// the same time) are left alone.
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
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || processAlive(pid) {
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

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// deleteNamespace kills every process in ns and deletes it.
func deleteNamespace(ctx context.Context, ns string) error {
	for _, pid := range pidsIn(ctx, ns) {
		if pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
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
