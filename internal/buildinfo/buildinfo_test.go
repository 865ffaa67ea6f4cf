package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{
			name: "release with VCS stamp",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "6ca3171b2f0e8d6c1a2b3c4d5e6f708192a3b4c5"},
				{Key: "vcs.time", Value: "2026-11-27T22:40:00Z"},
				{Key: "vcs.modified", Value: "false"},
			}},
			want: "fnmesh v0.3.0 (rev 6ca3171b2f0e, 2026-11-27T22:40:00Z) go1.26.8" + platform,
		},
		{
			name: "work tree with changes",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"},
				{Key: "vcs.modified", Value: "true"},
			}},
			want: "fnmesh (devel) (rev abc+dirty) go1.26.8" + platform,
		},
		{
			name: "no VCS, no module version",
			info: debug.BuildInfo{GoVersion: "go1.26.8"},
			want: "fnmesh go1.26.8" + platform,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, format("fnmesh", &tt.info))
		})
	}
}

func TestStringNamesTheRunningToolchain(t *testing.T) {
	s := String("prog")
	assert.True(t, strings.HasPrefix(s, "prog "), s)
	assert.Contains(t, s, runtime.Version())
	assert.True(t, strings.HasSuffix(s, runtime.GOOS+"/"+runtime.GOARCH), s)
}
