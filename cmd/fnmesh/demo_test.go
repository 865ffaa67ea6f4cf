package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoExpectedTier is the tier the design takes between workers at sites a
// and b (a at rank ra, b at rank rb): direct when one of them is a public
// host or both share a NAT's LAN; relay when a cloud NAT (address-and-port
// dependent mapping) is on the path, unless the other side's NAT is a full
// cone (whose endpoint-independent filtering admits the SYN from whatever
// port the cloud NAT picked); punched otherwise, including two subscribers
// of the same carrier-grade NAT (their home routers are distinct; the
// carrier hairpins).
func demoExpectedTier(a, b demoSite, sameNAT bool) string {
	switch {
	case a == sitePublic || b == sitePublic:
		return "direct"
	case sameNAT:
		return "direct"
	case a.symmetric() && b.symmetric():
		return "relay"
	case a.symmetric() && b == siteFullCone, b.symmetric() && a == siteFullCone:
		return "punched"
	case a.symmetric() || b.symmetric():
		return "relay"
	}
	return "punched"
}

var demoRow = regexp.MustCompile(`^(\d+) <-> (\d+) +(.+?) +(direct|punched|relay) +(\d+\.\d+ m?s) +(.*)$`)

// TestDemo runs the demo with 8 workers (two sites get a second worker, on
// the same LAN) and checks every row of the table.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	const workers = 8
	status := run(ctx, []string{"demo", "--workers", fmt.Sprint(workers), "--bytes", "64KiB",
		"--latency", "2ms", "--seed", "7"}, &stdout, &stderr)
	out := stdout.String()
	t.Log("\n" + out)
	require.Equal(t, 0, status, "stderr: %s", stderr.String())

	rows := 0
	for _, line := range strings.Split(out, "\n") {
		m := demoRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rows++
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		sa, sb := demoSite(a%int(numSites)), demoSite(b%int(numSites))
		sameNAT := sa == sb && sa != siteCarrierGrade && sa != sitePublic
		assert.Equal(t, demoExpectedTier(sa, sb, sameNAT), m[4], "pair %d (%s) <-> %d (%s)", a, sa, b, sb)
		assert.Equal(t, "64 KiB both ways", m[6], "pair %d <-> %d", a, b)
	}
	assert.Equal(t, workers*(workers-1)/2, rows, "one row per pair")
	assert.Contains(t, out, "28 links (")
	assert.Contains(t, out, "all 28 verified, 64 KiB each way")
}

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "1"},
		{"--workers", "65"},
		{"--bytes", "x"},
		{"--punch-timeout", "0s"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), append([]string{"demo"}, args...), &stdout, &stderr), "%v", args)
		assert.NotEmpty(t, stderr.String(), "%v", args)
	}
}
