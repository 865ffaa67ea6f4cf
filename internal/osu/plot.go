package osu

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WritePNG draws results as a PNG: time per call (left) and bandwidth
// (right) against message size, both log-log, one line per operation and
// rank count. Barrier has no size and appears in neither panel.
func WritePNG(w io.Writer, title string, results []Result) error {
	lat := newLogLog(title+": time per call", "size (bytes)", "microseconds")
	bw := newLogLog(title+": bandwidth", "size (bytes)", "MB/s")
	for i, s := range series(results) {
		if err := addLine(lat, i, s.label, s.points(func(r Result) float64 { return r.AvgUs })); err != nil {
			return err
		}
		if err := addLine(bw, i, s.label, s.points(func(r Result) float64 { return r.MBps })); err != nil {
			return err
		}
	}
	return drawRow(w, []*plot.Plot{lat, bw})
}

// WriteRatioPNG draws a comparison: the ratio of times (ours / theirs)
// against message size, one line per operation and rank count, with the
// parity line at 1.0. Below the line, ours is faster.
func WriteRatioPNG(w io.Writer, title string, ratios []Ratio) error {
	p, _, err := ratioPlot(title, ratios)
	if err != nil {
		return err
	}
	return drawRow(w, []*plot.Plot{p})
}

// ratioPlot is the plot WriteRatioPNG draws, and its parity line (nil
// without ratios to draw); line i has the colour plotutil.Color(i).
func ratioPlot(title string, ratios []Ratio) (_ *plot.Plot, parity *plotter.Line, _ error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "size (bytes)"
	p.Y.Label.Text = "time ratio (<= 1: ours at least as fast)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ratioTicks{}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	type key struct {
		op string
		np int
	}
	var order []key
	lines := map[key]plotter.XYs{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range ratios {
		if r.Size == 0 || r.Ratio <= 0 {
			continue
		}
		k := key{r.Op, r.Ranks}
		if _, ok := lines[k]; !ok {
			order = append(order, k)
		}
		lines[k] = append(lines[k], plotter.XY{X: float64(r.Size), Y: r.Ratio})
		lo, hi = min(lo, float64(r.Size)), max(hi, float64(r.Size))
	}
	for i, k := range order {
		if err := addLine(p, i, k.op+" np="+strconv.Itoa(k.np), lines[k]); err != nil {
			return nil, nil, err
		}
	}
	if len(order) > 0 {
		var err error
		parity, err = plotter.NewLine(plotter.XYs{{X: lo, Y: 1}, {X: hi, Y: 1}})
		if err != nil {
			return nil, nil, err
		}
		parity.Color = color.Black // no line's colour (plotutil.Color(0) was the first line's)
		parity.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(parity)
	}
	return p, parity, nil
}

type line struct {
	label string
	rows  []Result
}

func (l line) points(y func(Result) float64) plotter.XYs {
	var xys plotter.XYs
	for _, r := range l.rows {
		if v := y(r); r.Size > 0 && v > 0 {
			xys = append(xys, plotter.XY{X: float64(r.Size), Y: v})
		}
	}
	return xys
}

// series groups results by operation and rank count, in order of appearance.
func series(results []Result) []line {
	var out []line
	idx := map[string]int{}
	nps := map[int]bool{}
	for _, r := range results {
		nps[r.Ranks] = true
	}
	for _, r := range results {
		if r.Size == 0 {
			continue
		}
		label := r.Op
		if len(nps) > 1 {
			label += " np=" + strconv.Itoa(r.Ranks)
		}
		i, ok := idx[label]
		if !ok {
			i = len(out)
			idx[label] = i
			out = append(out, line{label: label})
		}
		out[i].rows = append(out[i].rows, r)
	}
	return out
}

func newLogLog(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func addLine(p *plot.Plot, i int, label string, xys plotter.XYs) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("osu: plot %s: %w", label, err)
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i / 7)
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	s.Radius = vg.Points(2)
	p.Add(l, s)
	p.Legend.Add(label, l, s)
	return nil
}

// drawRow renders plots side by side into one PNG.
func drawRow(w io.Writer, plots []*plot.Plot) (err error) {
	for _, p := range plots {
		fitLog(&p.X)
		fitLog(&p.Y)
	}
	defer func() {
		// gonum/plot panics on ranges it cannot draw; fitLog should rule
		// them out, and a plot is never worth crashing a benchmark run for.
		if r := recover(); r != nil {
			err = fmt.Errorf("osu: drawing plot: %v", r)
		}
	}()
	width := vg.Length(len(plots)) * 18 * vg.Centimeter
	img := vgimg.New(width, 13*vg.Centimeter)
	dc := draw.New(img)
	t := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Centimeter, PadTop: vg.Points(4),
		PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{plots}, t, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("osu: writing png: %w", err)
	}
	return nil
}

// fitLog gives a log axis a range it can draw: positive, and not a single
// point.
func fitLog(a *plot.Axis) {
	if !(a.Min > 0) || !(a.Max >= a.Min) || math.IsInf(a.Max, 0) {
		a.Min, a.Max = 1, 10
	}
	if a.Max/a.Min < 4 {
		mid := math.Sqrt(a.Min * a.Max)
		a.Min, a.Max = mid/2, mid*2
	}
}

// sizeTicks labels a log axis of byte counts at powers of 4 (1, 4, 16, ...,
// 4K, 16K, ..., 16M), with minor ticks at the powers of 2 between.
type sizeTicks struct{}

func (sizeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := 0; e <= 40; e++ {
		v := math.Ldexp(1, e)
		if v < lo/1.0001 || v > hi*1.0001 {
			continue
		}
		t := plot.Tick{Value: v}
		if e%2 == 0 {
			t.Label = FormatSize(int(v))
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// ratioTicks labels a log axis of ratios at the powers of 2 (0.25, 0.5, 1,
// 2, 4, ...) and, when the axis spans less than 16x, at 1.5 times them
// (0.75, 1.5, 3): ratios sit within a few times of 1, where powers of 10
// left the single label "1".
type ratioTicks struct{}

func (ratioTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	fine := hi/lo < 16
	for e := -20; e <= 20; e++ {
		for _, m := range []float64{1, 1.5} {
			v := m * math.Ldexp(1, e)
			if v < lo/1.0001 || v > hi*1.0001 {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || fine {
				t.Label = strconv.FormatFloat(v, 'g', 4, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
