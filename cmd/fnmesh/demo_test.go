package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

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

// demoRows parses the pair table of the demo's output.
type demoRowT struct {
	a, b     int
	sa, sb   demoSite
	tier     string
	verified string
}

func parseDemoRows(out string) []demoRowT {
	var rows []demoRowT
	for _, line := range strings.Split(out, "\n") {
		m := demoRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		rows = append(rows, demoRowT{a: a, b: b, sa: demoSite(a % int(numSites)), sb: demoSite(b % int(numSites)), tier: m[4], verified: m[6]})
	}
	return rows
}

// sameNAT reports whether the pair shares a NAT's LAN (each worker behind
// the carrier-grade NAT has its own home router; public hosts have none).
func (r demoRowT) sameNAT() bool {
	return r.sa == r.sb && r.sa != siteCarrierGrade && r.sa != sitePublic
}

// TestDemo runs the demo, exactly as the command does, in a synctest bubble:
// the emulated internet then runs in virtual time, so that the tiers do not
// depend on how loaded the machine is. 8 workers: two sites get a second
// worker, on the same LAN. Every row of the table is checked.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		const workers = 8
		status := run(context.Background(), []string{"demo", "--workers", fmt.Sprint(workers), "--bytes", "64KiB",
			"--latency", "2ms", "--seed", "7"}, &stdout, &stderr)
		out := stdout.String()
		t.Log("\n" + out)
		require.Equal(t, 0, status, "stderr: %s", stderr.String())

		rows := parseDemoRows(out)
		for _, r := range rows {
			assert.Equal(t, demoExpectedTier(r.sa, r.sb, r.sameNAT()), r.tier, "pair %d (%s) <-> %d (%s)", r.a, r.sa, r.b, r.sb)
			assert.Equal(t, "64 KiB both ways", r.verified, "pair %d <-> %d", r.a, r.b)
		}
		assert.Len(t, rows, workers*(workers-1)/2, "one row per pair")
		assert.Contains(t, out, "28 links (9 direct, 14 punched, 5 relay): all 28 verified, 64 KiB each way")
	})
}

// TestDemoRealTime runs the demo as a user does, in real time. On a loaded
// machine a punch may miss its deadline and be relayed instead, so only what
// holds whatever the load is checked: everything verified, and no pair that
// a symmetric NAT makes unpunchable got anything but the relay.
func TestDemoRealTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	status := run(ctx, []string{"demo", "--bytes", "100000"}, &stdout, &stderr)
	out := stdout.String()
	t.Log("\n" + out)
	require.Equal(t, 0, status, "stderr: %s", stderr.String())
	rows := parseDemoRows(out)
	assert.Len(t, rows, 15)
	for _, r := range rows {
		assert.Equal(t, "97.7 KiB both ways", r.verified, "pair %d <-> %d", r.a, r.b)
		if demoExpectedTier(r.sa, r.sb, r.sameNAT()) == "relay" {
			assert.Equal(t, "relay", r.tier, "pair %d (%s) <-> %d (%s)", r.a, r.sa, r.b, r.sb)
		}
	}
	assert.Contains(t, out, "all 15 verified")
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
