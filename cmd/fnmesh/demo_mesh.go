package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fnmesh/fnmesh/rendezvous"
)

// demoPair is the outcome for the link between ranks A < B.
type demoPair struct {
	A, B    int
	Tier    string
	Setup   time.Duration // the later of the two ends' setup times
	Bytes   int64         // bytes verified in each direction
	Err     string        // empty when both directions verified
	Summary string        // the sites of both, for the table
}

// demoMesh is the demo's first step: every worker joins the job at once
// through the rendezvous server, then every link carries cfg.bytes random
// bytes each way, checked byte for byte on arrival. It prints one row per
// pair and a summary line, and leaves the meshes in env for later steps.
func demoMesh(ctx context.Context, env *demoEnv) error {
	w := env.world
	n := len(w.workers)
	meshes := make([]*rendezvous.Mesh, n)
	errs := make([]error, n)
	began := time.Now()
	var wg sync.WaitGroup
	for i, wk := range w.workers {
		wg.Go(func() {
			meshes[i], errs[i] = rendezvous.Join(ctx, w.server, env.job, n, env.secret,
				rendezvous.WithNetwork(wk.host), rendezvous.WithRank(i),
				rendezvous.WithPunchTimeout(env.cfg.punchTimeout),
				rendezvous.WithLogger(env.log.With("rank", i)))
		})
	}
	wg.Wait()
	meshTime := time.Since(began)
	if err := errors.Join(errs...); err != nil {
		for _, m := range meshes {
			if m != nil {
				m.Close()
			}
		}
		fmt.Fprintf(env.out, "the job did not form: %v\n", err)
		return fmt.Errorf("joining: %w", err)
	}
	env.meshes = meshes

	began = time.Now()
	reports := make([]joinReport, n)
	for i, m := range meshes {
		wg.Go(func() { reports[i] = verifyMesh(ctx, m, env.cfg.bytes, env.log) })
	}
	wg.Wait()
	verifyTime := time.Since(began)

	pairs := demoPairs(w, reports)
	printPairs(env, pairs, meshTime, verifyTime)
	failed := 0
	for _, p := range pairs {
		if p.Err != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d links failed", failed, len(pairs))
	}
	return nil
}

// peerIn returns rank peer's entry in rep, or nil.
func peerIn(rep joinReport, peer int) *peerReport {
	for i := range rep.Peers {
		if rep.Peers[i].Rank == peer {
			return &rep.Peers[i]
		}
	}
	return nil
}

// demoPairs combines both ends' reports into one outcome per pair.
func demoPairs(w *demoWorld, reports []joinReport) []demoPair {
	var pairs []demoPair
	for a := range reports {
		for b := a + 1; b < len(reports); b++ {
			p := demoPair{A: a, B: b, Summary: w.pairLabel(a, b)}
			pa, pb := peerIn(reports[a], b), peerIn(reports[b], a)
			var problems []string
			switch {
			case pa == nil || pb == nil:
				problems = append(problems, "no link")
			default:
				p.Tier = pa.Tier
				if pb.Tier != pa.Tier {
					p.Tier = pa.Tier + "/" + pb.Tier
					problems = append(problems, "the ends disagree on the tier")
				}
				p.Setup = time.Duration(max(pa.SetupMS, pb.SetupMS) * float64(time.Millisecond))
				p.Bytes = min(pa.VerifiedBytes, pb.VerifiedBytes)
				for _, e := range []string{pa.Error, pb.Error} {
					if e != "" {
						problems = append(problems, e)
					}
				}
			}
			p.Err = strings.Join(problems, "; ")
			pairs = append(pairs, p)
		}
	}
	return pairs
}

// printPairs writes the pair table and the summary line.
func printPairs(env *demoEnv, pairs []demoPair, meshTime, verifyTime time.Duration) {
	tw := tabwriter.NewWriter(env.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "pair\tsites\ttier\tsetup\tverified")
	tiers := map[string]int{}
	failed := 0
	for _, p := range pairs {
		verified := humanBytes(p.Bytes) + " both ways"
		if p.Err != "" {
			verified = "FAILED: " + p.Err
			failed++
		}
		tiers[p.Tier]++
		fmt.Fprintf(tw, "%d <-> %d\t%s\t%s\t%s\t%s\n", p.A, p.B, p.Summary, p.Tier, humanDuration(p.Setup), verified)
	}
	tw.Flush()

	names := make([]string, 0, len(tiers))
	for t := range tiers {
		names = append(names, t)
	}
	sort.Slice(names, func(i, j int) bool { return tierOrder(names[i]) < tierOrder(names[j]) })
	var counts []string
	for _, t := range names {
		counts = append(counts, fmt.Sprintf("%d %s", tiers[t], t))
	}
	outcome := fmt.Sprintf("all %d verified", len(pairs))
	if failed > 0 {
		outcome = fmt.Sprintf("%d of %d FAILED", failed, len(pairs))
	}
	fmt.Fprintf(env.out, "\n%d links (%s): %s, %s each way; mesh ready in %s, bytes checked in %s\n",
		len(pairs), strings.Join(counts, ", "), outcome, humanBytes(env.cfg.bytes),
		humanDuration(meshTime), humanDuration(verifyTime))
}

// tierOrder sorts tiers from the cheapest path to the dearest.
func tierOrder(t string) int {
	switch t {
	case "direct":
		return 0
	case "punched":
		return 1
	case "relay":
		return 2
	}
	return 3
}

// humanDuration formats d for a table: milliseconds below a second, else
// seconds.
func humanDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// humanBytes formats n bytes with a binary unit: "1 MiB", "64 KiB", "1.5 MiB", "1000 B".
func humanBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
