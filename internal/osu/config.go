package osu

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Config is the measurement plan: which sizes, and how many calls per size.
// In a JSON report its keys are snake_case, as the rest of the report's
// (min_size, ...); reports written before that, with the Go field names
// (MinSize, ...), still read.
type Config struct {
	MinSize int `json:"min_size"` // bytes; sizes double from MinSize up to MaxSize
	MaxSize int `json:"max_size"`
	// LargeSize is the largest "small" message: sizes up to it run
	// Iterations timed calls after Warmup, larger ones LargeIterations after
	// LargeWarmup.
	LargeSize       int `json:"large_size"`
	Iterations      int `json:"iterations"`
	Warmup          int `json:"warmup"`
	LargeIterations int `json:"large_iterations"`
	LargeWarmup     int `json:"large_warmup"`
	// Window is the number of messages bw streams before each acknowledgement.
	Window int `json:"window"`
	// BWLargeIterations and BWLargeWarmup replace LargeIterations and
	// LargeWarmup for bw, which moves Window messages per iteration (osu_bw
	// uses 20 and 2).
	BWLargeIterations int `json:"bw_large_iterations"`
	BWLargeWarmup     int `json:"bw_large_warmup"`
}

// legacyConfig is Config as reports before the snake_case keys wrote it:
// the same fields, keyed by their Go names.
type legacyConfig struct {
	MinSize, MaxSize, LargeSize                      int
	Iterations, Warmup, LargeIterations, LargeWarmup int
	Window, BWLargeIterations, BWLargeWarmup         int
}

// UnmarshalJSON reads the snake_case keys, or, in a report written before
// them, the Go field names.
func (c *Config) UnmarshalJSON(b []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, old := range []string{"MinSize", "MaxSize", "LargeSize", "LargeIterations", "LargeWarmup", "BWLargeIterations", "BWLargeWarmup"} {
		if _, ok := keys[old]; ok {
			var l legacyConfig
			if err := json.Unmarshal(b, &l); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			*c = Config(l)
			return nil
		}
	}
	type plain Config // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	*c = Config(p)
	return nil
}

// DefaultConfig returns the OSU defaults: 1 B to 16 MiB, 1000 calls after 100
// warm-up up to 8 KiB, 100 after 10 above, and a bw window of 64 with 20
// iterations after 2 warm-up above 8 KiB.
func DefaultConfig() Config {
	return Config{
		MinSize: 1, MaxSize: 16 << 20, LargeSize: 8 << 10,
		Iterations: 1000, Warmup: 100, LargeIterations: 100, LargeWarmup: 10,
		Window: 64, BWLargeIterations: 20, BWLargeWarmup: 2,
	}
}

// Validate reports the first setting that cannot be measured.
func (c Config) Validate() error {
	switch {
	case c.MinSize < 1:
		return fmt.Errorf("osu: minimum size %d: must be at least 1 byte", c.MinSize)
	case c.MaxSize < c.MinSize:
		return fmt.Errorf("osu: maximum size %d is below the minimum %d", c.MaxSize, c.MinSize)
	case c.MaxSize > 1<<30:
		return fmt.Errorf("osu: maximum size %d: larger than 1 GiB", c.MaxSize)
	case c.Iterations < 1 || c.LargeIterations < 1 || c.BWLargeIterations < 1:
		return errors.New("osu: iterations must be at least 1")
	case c.Warmup < 0 || c.LargeWarmup < 0 || c.BWLargeWarmup < 0:
		return errors.New("osu: warm-up counts must not be negative")
	case c.Window < 1:
		return fmt.Errorf("osu: bw window %d: must be at least 1", c.Window)
	}
	return nil
}

// Sizes returns the message sizes of the plan: MinSize doubling up to MaxSize.
func (c Config) Sizes() []int {
	var sizes []int
	for s := c.MinSize; s > 0 && s <= c.MaxSize; s *= 2 {
		sizes = append(sizes, s)
	}
	return sizes
}

// Counts returns how many timed calls and warm-up calls a collective or
// latency test runs at size.
func (c Config) Counts(size int) (iterations, warmup int) {
	if size > c.LargeSize {
		return c.LargeIterations, c.LargeWarmup
	}
	return c.Iterations, c.Warmup
}

// bwCounts is Counts for bw.
func (c Config) bwCounts(size int) (iterations, warmup int) {
	if size > c.LargeSize {
		return c.BWLargeIterations, c.BWLargeWarmup
	}
	return c.Iterations, c.Warmup
}

// maxParsedSize is the largest size ParseSize reads: 2 GiB.
const maxParsedSize = 1 << 31

// sizeUnits are the units ParseBytes reads, upper-cased: K, M, G and T,
// alone or followed by B or iB, all binary (1024), as in the OSU tools.
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
}

// ErrNotSize and ErrSizeTooLarge are ParseBytes's two failures.
var (
	ErrNotSize      = errors.New("not a byte count")
	ErrSizeTooLarge = errors.New("byte count too large")
)

// ParseBytes reads a byte count the way every fnmesh command reads one
// (bench's -min and -max, join's and demo's --bytes): digits, then
// optionally a unit K, M, G or T, alone or followed by B or iB, in either
// case, every unit binary (1K, 1KB and 1KiB are 1024 bytes), spaces around
// ignored. A count above max is ErrSizeTooLarge; anything else that is not
// such a count, ErrNotSize. Callers word the error for their flag.
func ParseBytes(s string, max int64) (int64, error) {
	t := strings.TrimSpace(s)
	digits := len(t) - len(strings.TrimLeft(t, "0123456789"))
	mult, ok := sizeUnits[strings.ToUpper(strings.TrimSpace(t[digits:]))]
	v, err := strconv.ParseInt(t[:digits], 10, 64)
	switch {
	case ok && (errors.Is(err, strconv.ErrRange) || err == nil && v > max/mult):
		return 0, ErrSizeTooLarge
	case !ok || err != nil:
		return 0, ErrNotSize
	}
	return v * mult, nil
}

// ParseSize reads a byte count as ParseBytes does, up to 2G: "1", "8K",
// "8KiB", "16M" or "1MiB". A count above 2G is an error that says it is too
// large; anything else that is not a byte count, one that says what is
// wanted.
func ParseSize(s string) (int, error) {
	n, err := ParseBytes(s, maxParsedSize)
	switch {
	case errors.Is(err, ErrSizeTooLarge):
		return 0, fmt.Errorf("osu: size %q: too large, at most %s", s, FormatSize(maxParsedSize))
	case err != nil:
		return 0, fmt.Errorf("osu: size %q: want a byte count like 64, 8K or 16MiB", s)
	}
	return int(n), nil
}

// FormatSize writes a byte count the short way: 512, 8K, 16M.
func FormatSize(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "G"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "M"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n)
}
