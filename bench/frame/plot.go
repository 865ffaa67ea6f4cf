//go:build unix

package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// drawPlot draws the join's phases against the worker count: flat lines
// mean perfect weak scaling; for strong scaling, time falling as 1/workers.
func drawPlot(rep report, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("fnmesh frame: Cylon join benchmark, %s scaling (loopback, one machine)", rep.Scaling)
	p.X.Label.Text = "workers"
	p.Y.Label.Text = "seconds (slowest rank)"
	series := []struct {
		name string
		get  func(run) float64
	}{
		{"join total", func(r run) float64 { return r.Join.TotalSec }},
		{"partition", func(r run) float64 { return r.Join.PartitionSec }},
		{"exchange", func(r run) float64 { return r.Join.ExchangeSec }},
		{"local join", func(r run) float64 { return r.Join.LocalSec }},
		{"group-by total", func(r run) float64 { return r.GroupBy.TotalSec }},
	}
	var args []any
	for _, s := range series {
		pts := make(plotter.XYs, 0, len(rep.Runs))
		for _, r := range rep.Runs {
			if v := s.get(r); v > 0 || (r.Join.TotalSec > 0 && s.name != "group-by total") {
				pts = append(pts, plotter.XY{X: float64(r.Workers), Y: v})
			}
		}
		if len(pts) > 0 {
			args = append(args, s.name, pts)
		}
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
