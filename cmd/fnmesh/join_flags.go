package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag.Value for a number of bytes: a plain integer or one
// with a unit, K, M, G or T, alone or followed by B or iB, in either case.
// Every unit is binary (1K, 1KB and 1KiB are 1024 bytes), as fnmesh bench's
// -min and -max and the OSU tools read them, so that one size means the
// same in every fnmesh command.
type byteSize int64

var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
}

func (b *byteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	digits := len(t) - len(strings.TrimLeft(t, "0123456789"))
	mult, ok := byteUnits[strings.ToUpper(strings.TrimSpace(t[digits:]))]
	v, err := strconv.ParseInt(t[:digits], 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("%q is not a byte count (e.g. 1048576, 64K, 64KiB or 1M; units are binary)", s)
	}
	if v > (1<<62)/mult {
		return fmt.Errorf("%q is too large", s)
	}
	*b = byteSize(v * mult)
	return nil
}

func (b byteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// rankFlag is a flag.Value for an optional rank: unset unless given, so
// that the help shows no made-up default and every given value is checked.
type rankFlag struct {
	rank int
	set  bool
}

func (r *rankFlag) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a rank", s)
	}
	r.rank, r.set = v, true
	return nil
}

func (r *rankFlag) String() string {
	if r == nil || !r.set {
		return ""
	}
	return strconv.Itoa(r.rank)
}
