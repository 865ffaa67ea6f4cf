package osu

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one row of a run: an operation at one size and rank count.
//
// AvgUs, MinUs and MaxUs are microseconds per call: for a collective the
// average, minimum and maximum over ranks of each rank's average call time;
// for latency the one-way time; for bw the time per message. MBps is
// Size/AvgUs (bytes per microsecond, MB/s), for bw the streamed bandwidth.
type Result struct {
	Op         string  `json:"op"`
	Ranks      int     `json:"np"`
	Size       int     `json:"size"`
	Iterations int     `json:"iterations"`
	AvgUs      float64 `json:"avg_us"`
	MinUs      float64 `json:"min_us"`
	MaxUs      float64 `json:"max_us"`
	MBps       float64 `json:"mb_per_s"`
}

// Columns is the CSV header shared by fnmesh bench and bench/mpi/osu.c.
var Columns = []string{"op", "np", "size", "iterations", "avg_us", "min_us", "max_us", "mb_per_s"}

// Report is the JSON document of a run: how it was made, and its results.
type Report struct {
	Tool      string    `json:"tool"`              // "fnmesh" or "openmpi"
	Command   string    `json:"command,omitempty"` // the command line that produced it
	Host      string    `json:"host,omitempty"`    // hostname
	CPUs      int       `json:"cpus,omitempty"`    // logical CPUs of the machine
	GoVersion string    `json:"go_version,omitempty"`
	Started   time.Time `json:"started"`
	Elapsed   float64   `json:"elapsed_s"`
	Config    Config    `json:"config"`
	Options   []string  `json:"options,omitempty"` // communicator settings, e.g. forced algorithms
	Results   []Result  `json:"results"`
	// Planned is how many results the run's plan held (0 in reports written
	// before the field). Partial says that the run stopped before it had
	// them all (interrupted, timed out, a worker failed), and Stopped why.
	// A partial run's results are sound measurements, but only the first
	// of the plan's: see PartialNote.
	Planned int    `json:"planned_results,omitempty"`
	Partial bool   `json:"partial,omitempty"`
	Stopped string `json:"stopped,omitempty"`
}

// PartialNote describes a partial run, "partial run: 12 of 21 results
// (stopped: interrupt signal received)", and is "" for a complete one (or
// one from before Planned and Partial, which cannot tell). A report with
// fewer results than Planned is partial even if Partial is not set.
func (r Report) PartialNote() string {
	if !r.Partial && (r.Planned == 0 || len(r.Results) >= r.Planned) {
		return ""
	}
	note := fmt.Sprintf("partial run: %d results", len(r.Results))
	if r.Planned > 0 {
		note = fmt.Sprintf("partial run: %d of %d results", len(r.Results), r.Planned)
	}
	if r.Stopped != "" {
		note += " (" + r.Stopped + ")"
	}
	return note
}

// WriteCSV writes results with the header row.
func WriteCSV(w io.Writer, results []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return err
	}
	for _, r := range results {
		if err := cw.Write(r.record()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (r Result) record() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	return []string{r.Op, strconv.Itoa(r.Ranks), strconv.Itoa(r.Size), strconv.Itoa(r.Iterations),
		f(r.AvgUs), f(r.MinUs), f(r.MaxUs), f(r.MBps)}
}

// ReadCSV reads results written by WriteCSV or bench/mpi/osu.c. Several files
// concatenated are fine: repeated header rows, blank lines and lines starting
// with '#' are skipped. A count that is not a non-negative integer, a time or
// rate that is not a finite non-negative number (NaN, Inf), an empty op or
// an np below 1 is an error naming the line.
func ReadCSV(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	var out []Result
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("osu: csv: %w", err)
		}
		if len(rec) > 0 && rec[0] == Columns[0] {
			continue // a header row
		}
		row, _ := cr.FieldPos(0)
		if len(rec) != len(Columns) {
			return nil, fmt.Errorf("osu: csv line %d: %d fields, want %d (%s)", row, len(rec), len(Columns), strings.Join(Columns, ","))
		}
		res, err := parseRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("osu: csv line %d: %w", row, err)
		}
		out = append(out, res)
	}
}

func parseRecord(rec []string) (Result, error) {
	r := Result{Op: rec[0]}
	ints := []*int{&r.Ranks, &r.Size, &r.Iterations}
	for i, p := range ints {
		v, err := strconv.Atoi(rec[1+i])
		if err != nil || v < 0 {
			return r, fmt.Errorf("%s %q: not a count", Columns[1+i], rec[1+i])
		}
		*p = v
	}
	floats := []*float64{&r.AvgUs, &r.MinUs, &r.MaxUs, &r.MBps}
	for i, p := range floats {
		v, err := strconv.ParseFloat(rec[4+i], 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 1) { // NaN and Inf parse, without error
			return r, fmt.Errorf("%s %q: not a non-negative number", Columns[4+i], rec[4+i])
		}
		*p = v
	}
	return r, r.Validate()
}

// Validate reports what makes r no measurement: an empty op, np below 1, a
// negative size or iteration count, or a time or rate that is not a finite
// non-negative number (NaN and Inf would compare into ratios of NaN or 0).
func (r Result) Validate() error {
	if r.Op == "" || r.Ranks < 1 {
		return errors.New("empty op or np < 1")
	}
	if r.Size < 0 || r.Iterations < 0 {
		return fmt.Errorf("%s np=%d: negative size %d or iterations %d", r.Op, r.Ranks, r.Size, r.Iterations)
	}
	for i, v := range []float64{r.AvgUs, r.MinUs, r.MaxUs, r.MBps} {
		if !(v >= 0) || math.IsInf(v, 1) {
			return fmt.Errorf("%s np=%d size %d: %s %v: not a finite non-negative number", r.Op, r.Ranks, r.Size, Columns[4+i], v)
		}
	}
	return nil
}

// WriteJSON writes the report, indented.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// ReadJSON reads a report written by WriteJSON. A result that is no
// measurement (see Result.Validate) is an error naming it.
func ReadJSON(r io.Reader) (Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return rep, fmt.Errorf("osu: json report: %w", err)
	}
	return rep, rep.validate("osu: json report")
}

// ReadJSONReports reads one report written by WriteJSON or several
// concatenated (cat a.json b.json), to the end of r: anything after a
// report that is not another one is an error, as is a result that is no
// measurement (see Result.Validate). The errors of the first report read as
// ReadJSON's; those of a later one name it, "osu: json report 2: ...".
func ReadJSONReports(r io.Reader) ([]Report, error) {
	dec := json.NewDecoder(r)
	var reps []Report
	for n := 1; ; n++ {
		name := "osu: json report"
		if n > 1 {
			name = fmt.Sprintf("osu: json report %d", n)
		}
		var rep Report
		err := dec.Decode(&rep)
		if errors.Is(err, io.EOF) && n > 1 {
			return reps, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := rep.validate(name); err != nil {
			return nil, err
		}
		reps = append(reps, rep)
	}
}

// validate checks every result of rep (Result.Validate); name starts the error.
func (rep Report) validate(name string) error {
	for i, res := range rep.Results {
		if err := res.Validate(); err != nil {
			return fmt.Errorf("%s: result %d: %w", name, i+1, err)
		}
	}
	return nil
}

// WriteTable prints results as an aligned table, one block per operation and
// rank count, in the order they come.
func WriteTable(w io.Writer, results []Result) error {
	rows := [][]string{{"op", "np", "size", "iters", "avg us", "min us", "max us", "MB/s"}}
	var last string
	for _, r := range results {
		key := r.Op + "/" + strconv.Itoa(r.Ranks)
		if last != "" && key != last {
			rows = append(rows, nil)
		}
		last = key
		mbps := "-"
		if r.Size > 0 {
			mbps = fmt.Sprintf("%.2f", r.MBps)
		}
		rows = append(rows, []string{r.Op, strconv.Itoa(r.Ranks), FormatSize(r.Size), strconv.Itoa(r.Iterations),
			fmt.Sprintf("%.2f", r.AvgUs), fmt.Sprintf("%.2f", r.MinUs), fmt.Sprintf("%.2f", r.MaxUs), mbps})
	}
	return writeAligned(w, "lrrrrrrr", rows)
}

// Ops returns the distinct operation names of results, in order of appearance.
func Ops(results []Result) []string {
	var ops []string
	for _, r := range results {
		if !slices.Contains(ops, r.Op) {
			ops = append(ops, r.Op)
		}
	}
	return ops
}
