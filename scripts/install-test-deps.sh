#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine beside Go: a C
# compiler for the race detector (go test -race needs cgo: gcc and
# libc6-dev), and the tools for the network-namespace NAT lab (iproute2,
# nftables, conntrack). Without root nothing is installed: the lab tests then
# skip with a message, and the -race runs fail if there is no C compiler.
set -euo pipefail

pkgs=(gcc libc6-dev iproute2 nftables conntrack)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "install-test-deps: apt-get install ${missing[*]}"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "install-test-deps: not root or no apt-get; missing ${missing[*]}: the namespace lab tests will skip, and go test -race needs a C compiler"
	fi
fi
