#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian or Ubuntu machine
# beside Go (which it does not install: it must be on PATH): a C compiler for
# the race detector (go test -race needs cgo: gcc and libc6-dev), the tools
# for the network-namespace NAT lab (iproute2, nftables, conntrack), and the
# Go modules the build needs (from GOPROXY, by default proxy.golang.org).
# Needs the distribution's package mirror (apt-get) and the Go module proxy,
# nothing else. Idempotent: what is there already is not fetched again.
# Without root no package is installed: the lab tests then skip with a
# message, and the -race runs fail if there is no C compiler. Each failing
# step says which it was, and the script exits non-zero.
set -euo pipefail

fail() {
	echo "install-test-deps: FAIL: $*" >&2
	exit 1
}

command -v go >/dev/null || fail "go is not on PATH: install Go (see go.mod for the version) first"

pkgs=(gcc libc6-dev iproute2 nftables conntrack)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "install-test-deps: apt-get install ${missing[*]}"
		# Another apt (an unattended upgrade, another engineer's run) may hold
		# the lock: wait for it rather than fail at once.
		apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
		apt-get "${apt_opts[@]}" update >/dev/null ||
			fail "apt-get update (is the package mirror in /etc/apt/sources.list* reachable?)"
		DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null ||
			fail "apt-get install ${missing[*]}"
	else
		echo "install-test-deps: not root or no apt-get; missing ${missing[*]}: the namespace lab tests will skip, and go test -race needs a C compiler"
	fi
fi

cd "$(dirname "$0")/.."
go mod download || fail "go mod download (is the Go module proxy, $(go env GOPROXY), reachable?)"
