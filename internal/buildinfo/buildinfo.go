// Package buildinfo describes the running binary for the commands'
// version output: the module version, the commit it was built from and the
// Go toolchain, as the Go linker recorded them. It sits beside the
// commands, above every library layer, and imports nothing of ours.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// String returns one line naming prog, its module version, the VCS
// revision and time it was built from (with "+dirty" when the work tree
// had changes), the Go version and the platform, e.g.
//
//	fnmesh v0.3.0 (rev 6ca3171b2f0e, 2026-11-27T22:40:00Z) go1.26.8 linux/amd64
//
// Parts the binary does not record (a test binary, a build without VCS
// stamping) are left out.
func String(prog string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information) %s %s/%s", prog, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return format(prog, info)
}

func format(prog string, info *debug.BuildInfo) string {
	var b strings.Builder
	b.WriteString(prog)
	if v := info.Main.Version; v != "" {
		b.WriteString(" " + v)
	}
	var rev, when string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		rev = rev[:min(len(rev), 12)]
		if dirty {
			rev += "+dirty"
		}
		b.WriteString(" (rev " + rev)
		if when != "" {
			b.WriteString(", " + when)
		}
		b.WriteString(")")
	}
	goVersion := info.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, " %s %s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
