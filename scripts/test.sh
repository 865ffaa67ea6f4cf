#!/usr/bin/env bash
# The whole test suite: installs what the tests need, checks formatting and
# vet, runs every test (with -race for the networking packages), runs each
# fuzz target briefly, and prints the go test summary lines. Exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

# Every long step (the installs, go vet, each go test and fuzz run) runs
# through run_child: in the background, in a session and process group of
# its own, while the script waits for it with the wait builtin. bash runs a
# trap only once the command in the foreground has ended, so a SIGTERM sent
# to this script alone used to wait for the whole running go test package
# (minutes; the go command and the test binary never got it), whereas wait
# returns at once. The trap (stop) then hands the signal on to the child's
# process group (the go command, the test binary and what it started) and
# waits for the group to end: SIGINT and SIGTERM let the lab tests' handler
# remove its namespaces, and no test binary is left running, orphaned. A
# group still there after $stop_grace seconds, or a second signal, gets
# SIGKILL. SIGHUP is handed on alike. On Ctrl-C (SIGINT, which the child,
# in a group of its own, no longer gets from the terminal) the script still
# stops rather than going on with the next package as if the go test had
# merely failed.
stop_grace=60
child=          # pid (and process group id) of the command run_child runs
launching=      # set while run_child starts it, before child is known
child_what=     # what it is, for the messages
child_out=      # the file its output goes to, if not the terminal
stopping=
force=

# run_child CMD...: runs CMD as described above, its output to $child_out
# if set, and returns its status. (Not run_child >file: the traps, which
# run inside it, would write there too.)
run_child() {
	launching=1
	# An asynchronous command of a script ignores SIGINT and SIGQUIT: undo
	# that, so that the SIGINT stop hands on reaches the go command and the
	# test binary as it would from the terminal. setsid makes it the leader
	# of a new session and process group (it is not one yet, so setsid
	# execs rather than forks: its pid is the group's id).
	(
		trap - INT QUIT
		if [[ -n $child_out ]]; then exec >"$child_out" 2>&1; fi
		exec setsid "$@"
	) </dev/null &
	child=$!
	launching=
	wait "$child"
	local rc=$?
	child=
	return $rc
}

# group_alive PID: whether process PID or a process of its group is still
# running (a zombie is not: a test binary orphaned by the go command's death
# is reaped by init, which may take its time, or never in a container).
group_alive() {
	local pid=$1 f line
	if [[ ! -r /proc/self/stat ]]; then
		kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null
		return
	fi
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		set -- ${line##*) } # state ppid pgrp ...
		[[ ${1-Z} != Z && (${3-} == "$pid" || $f == "/proc/$pid/stat") ]] && return 0
	done
	return 1
}

# stop SIGNAL STATUS WORD: the body of the INT and TERM traps.
stop() {
	local sig=$1 code=$2 word=$3 pid=${child:-} i
	if [[ -n $stopping ]]; then # a second signal while stopping
		force=1
		return
	fi
	stopping=1
	[[ -z $pid && -n $launching ]] && pid=${!:-}
	echo "$word"
	if [[ -n $pid ]] && group_alive "$pid"; then
		echo "$word: stopping $child_what (process group $pid) with SIG$sig; waiting for it to end (at most ${stop_grace}s; signal again to kill it at once)"
		# (Before setsid has run, the group is not there yet: the
		# subshell that is to exec it then gets the signal, and dies of it.)
		kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null
		local deadline=$((SECONDS + stop_grace))
		for ((i = 0; i < stop_grace * 10 && SECONDS < deadline && !force; i++)); do
			group_alive "$pid" || break
			sleep 0.1
		done
		if group_alive "$pid"; then
			echo "$word: $child_what still running: killing its process group"
			kill -s KILL -- "-$pid" 2>/dev/null
			deadline=$((SECONDS + 5))
			for ((i = 0; i < 50 && SECONDS < deadline; i++)); do
				group_alive "$pid" || break
				sleep 0.1
			done
		fi
		wait "$pid" 2>/dev/null
		if [[ -n $child_out && -s $child_out ]]; then
			echo "$word: the output of $child_what:"
			cat "$child_out"
		fi
	fi
	exit "$code"
}

status=0
tmp=$(mktemp -d)
log=$tmp/log
: >"$log"
trap 'rm -rf "$tmp"' EXIT
# The go command's build directories too: a go command killed by SIGTERM
# leaves its own behind.
if [[ -z ${GOTMPDIR-} ]]; then
	export GOTMPDIR=$tmp/go
	mkdir "$GOTMPDIR"
fi
trap 'stop INT 130 INTERRUPTED' INT
trap 'stop TERM 143 TERMINATED' TERM
# The child, in a session of its own, no longer gets the terminal's SIGHUP
# either (a closed terminal, a dropped ssh connection): hand it on too, or
# the go test and its namespaces would go on running, orphaned.
trap 'stop HUP 129 HANGUP' HUP

child_what="scripts/install-test-deps.sh"
run_child scripts/install-test-deps.sh || { echo "FAIL: installing test dependencies"; exit 1; }

# As root the network-namespace lab tests must run: NSLAB_REQUIRE makes them
# fail rather than skip when the lab cannot be built (NSLAB_REQUIRE= turns
# that off). Otherwise they skip, which go test would not show.
if [[ $(id -u) -eq 0 ]]; then
	export NSLAB_REQUIRE=${NSLAB_REQUIRE-1}
else
	echo "NOTE: not root: the network-namespace NAT lab tests (internal/nslab) skip"
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then echo "FAIL: gofmt needed on:"; echo "$unformatted"; status=1; fi

echo "== go vet"
child_what="go vet ./..."
run_child go vet ./... || status=1

# A package go list cannot load would otherwise be left out of both lists.
race_pkgs=$(go list ./netsim/... ./punch/... ./rendezvous/... ./collective/... ./cmd/...) ||
	{ echo "FAIL: go list (networking packages)"; status=1; }
all_pkgs=$(go list ./...) || { echo "FAIL: go list ./..."; status=1; }
other_pkgs=$(grep -vxF -f <(printf '%s\n' $race_pkgs) <<<"$all_pkgs" || true)

# run_pkg MODE PKG: tests one package and appends its output to the log. A
# package whose race run dies inside the race runtime itself ("ThreadSanitizer:
# CHECK failed", an open Go bug with testing/synctest under -race:
# golang/go#78156) is run again, at most twice, and the retry is reported.
run_pkg() {
	local mode=$1 pkg=$2 out rc try
	for try in 1 2 3; do
		out=$(mktemp -p "$tmp")
		local cmd=(go test -count=1 -timeout 30m "$pkg")
		[[ $mode == race ]] && cmd=(go test -race -count=1 -timeout 30m "$pkg")
		child_what="${cmd[*]}" child_out=$out
		run_child "${cmd[@]}"
		rc=$?
		child_out=
		cat "$out" >>"$log"
		if ((rc == 0)); then
			grep -E '^(ok|\?)' "$out" || true
		else
			cat "$out" # the whole output of a failing package
		fi
		if ((rc != 0)) && [[ $mode == race ]] && grep -q 'ThreadSanitizer: CHECK failed' "$out" && ((try < 3)); then
			echo "RETRY: $pkg died inside the race runtime (golang/go#78156); running it again" | tee -a "$log"
			rm -f "$out"
			continue
		fi
		rm -f "$out"
		return $rc
	done
}

echo "== go test -race (networking packages)"
for pkg in $race_pkgs; do run_pkg race "$pkg" || status=1; done
if [[ -n $other_pkgs ]]; then
	echo "== go test (data packages)"
	for pkg in $other_pkgs; do run_pkg plain "$pkg" || status=1; done
fi

# run_fuzz DIR FN: fuzzes one target for $fuzztime. A finding (a failed check,
# a panic, a hang) always writes its input to testdata/fuzz and fails. The
# fuzzing engine can also fail by itself at the -fuzztime boundary, having
# found nothing ("context deadline exceeded" and no input written:
# golang/go#51484); a failure that wrote no input is reported as a RETRY and
# fuzzed once more, and a second failure fails.
fuzztime=${FUZZTIME:-10s}
run_fuzz() {
	local dir=$1 fn=$2 out rc try
	for try in 1 2; do
		out=$(mktemp -p "$tmp")
		local cmd=(go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "./$dir")
		child_what="${cmd[*]}" child_out=$out
		run_child "${cmd[@]}"
		rc=$?
		child_out=
		if ((rc != 0 && try < 2)) && ! grep -q 'Failing input written to' "$out"; then
			# shown in full, indented so that the summary counts the retry only
			sed 's/^/    (first run) /' "$out" | tee -a "$log"
			echo "RETRY: $fn failed with no input written (the engine's own failure, golang/go#51484); fuzzing it again" | tee -a "$log"
			rm -f "$out"
			continue
		fi
		cat "$out" >>"$log"
		if ((rc == 0)); then
			tail -n 1 "$out"
		else
			cat "$out" # the whole output of a failing target
		fi
		rm -f "$out"
		return $rc
	done
}

echo "== fuzz targets, briefly"
while read -r file; do
	dir=$(dirname "$file")
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		run_fuzz "$dir" "$fn" || status=1
	done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sed 's|^\./||' | sort)

echo "== summary"
grep -E '^(ok|FAIL|RETRY|---|panic:)|\[no test files\]' "$log" | grep -v '^--- PASS' || true
if ((status)); then echo "TESTS FAILED"; else echo "ALL TESTS PASSED"; fi
exit $status
