#!/usr/bin/env bash
# The whole test suite: installs what the tests need, checks formatting and
# vet, runs every test (with -race for the networking packages), runs each
# fuzz target briefly, and prints the go test summary lines. Exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh || { echo "FAIL: installing test dependencies"; exit 1; }

status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then echo "FAIL: gofmt needed on:"; echo "$unformatted"; status=1; fi

echo "== go vet"
go vet ./... || status=1

race_pkgs=$(go list ./netsim/... ./punch/... ./rendezvous/... ./collective/... ./cmd/... 2>/dev/null)
other_pkgs=$(go list ./... 2>/dev/null | grep -vxF -f <(printf '%s\n' $race_pkgs) || true)

echo "== go test -race (networking packages)"
go test -race -count=1 -timeout 40m $race_pkgs 2>&1 | tee -a "$log"
((PIPESTATUS[0])) && status=1
if [[ -n $other_pkgs ]]; then
	echo "== go test (data packages)"
	go test -count=1 -timeout 30m $other_pkgs 2>&1 | tee -a "$log"
	((PIPESTATUS[0])) && status=1
fi

echo "== fuzz targets, briefly"
fuzztime=${FUZZTIME:-10s}
while read -r file; do
	dir=$(dirname "$file")
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "./$dir" 2>&1 | tee -a "$log" | tail -n 3
		((PIPESTATUS[0])) && status=1
	done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sed 's|^\./||' | sort)

echo "== summary"
grep -E '^(ok|FAIL|---|panic:)|\[no test files\]' "$log" | grep -v '^--- PASS' || true
if ((status)); then echo "TESTS FAILED"; else echo "ALL TESTS PASSED"; fi
exit $status
