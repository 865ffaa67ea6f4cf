#!/usr/bin/env bash
# bench/mpi/run.sh: fnmesh's collectives side by side with Open MPI, on this
# machine, in one run.
#
# Installs what it needs (Debian: openmpi-bin libopenmpi-dev gcc libc6-dev
# iproute2 iperf3; as root), builds fnmesh and the OSU-method C harness
# (bench/mpi/osu.c), measures the loopback TCP ceiling with iperf3, runs
# `fnmesh bench` and the harness under mpirun (TCP on loopback) at each rank
# count, and prints the ratios of times (fnmesh / Open MPI; <= 1.0: fnmesh at
# least as fast) per operation and size, with the targets of issue 4.
#
# usage: bench/mpi/run.sh [-np "2 4"] [-repeat N] [-out DIR] [bench flags...]
#   -repeat N runs each tool N times per rank count, alternating, and compares
#   each row's best (lowest) time: the way to see through a busy machine.
#   the measurement flags go to both tools unchanged: -ops, -min, -max,
#   -iters, -warmup, -iters-large, -warmup-large, -large, -window,
#   -bw-iters-large, -bw-warmup-large; the others (-algo, -checksum, -procs,
#   -progress, ...) to fnmesh bench only (see `fnmesh bench -h`). Boolean
#   flags take the -flag=value form.
# e.g. a quick look: bench/mpi/run.sh -max 1M -iters 200 -warmup 20
# CONGESTION=name sets the TCP congestion control of fnmesh's links, of
# iperf3 and of Open MPI (default cubic, fnmesh's default): Open MPI cannot
# choose its own, so where the system's default differs the measurement runs
# in a network namespace whose default is name (root needed).
# MPI_CONGESTION=system leaves Open MPI on the system's default (unequal).
#
# Results land in DIR (default bench/results/<date>-<time>): iperf3-npN[-runK].json,
# fnmesh.csv/.json/.png, openmpi.csv, compare.txt and ratio.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

nps="2 4"
congestion=${CONGESTION:-cubic}
repeat=1
out="bench/results/$(date +%Y%m%d-%H%M%S)"
while (($#)); do
	case $1 in
	-np) nps=$2; shift 2 ;;
	-repeat) repeat=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	*) break ;;
	esac
done
case ${MPI_CONGESTION:-same} in
same | system) ;;
*)
	echo "run.sh: MPI_CONGESTION=$MPI_CONGESTION: want same or system" >&2
	exit 2
	;;
esac
# Measurement flags go to both tools; the others (-algo, -checksum, -procs,
# -progress, ...) only to fnmesh bench.
flags=()
fnmesh_only=()
while (($#)); do
	name=${1#-}
	name=${name#-}
	case ${name%%=*} in
	ops | min | max | large | iters | warmup | iters-large | warmup-large | window | bw-iters-large | bw-warmup-large)
		if [[ $name == *=* ]]; then
			flags+=("$1")
			shift
		else
			flags+=("$1" "${2:?$1 needs a value}")
			shift 2
		fi
		;;
	np | repeat | out)
		# Here they would reach fnmesh bench alone: fnmesh at one rank count
		# (best of two runs) against Open MPI at each, and so on.
		echo "run.sh: $1 must come before the bench flags (usage at the top of run.sh)" >&2
		exit 2
		;;
	csv | json | png | congestion)
		echo "run.sh: $1 is run.sh's to set (CONGESTION=name for the congestion control)" >&2
		exit 2
		;;
	*)
		fnmesh_only+=("$1")
		shift
		;;
	esac
done

need=()
command -v mpicc >/dev/null || need+=(openmpi-bin libopenmpi-dev)
command -v mpirun >/dev/null || need+=(openmpi-bin)
# mpicc calls gcc, which libopenmpi-dev does not depend on (only gfortran's
# gcc-12); ss (iproute2) tells when the iperf3 server listens.
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v ss >/dev/null || need+=(iproute2)
command -v iperf3 >/dev/null || need+=(iperf3)
if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
		echo "run.sh: need ${need[*]} (Debian packages) and cannot install them: not root or no apt-get" >&2
		exit 1
	fi
	echo "== installing ${need[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$out"
echo "== building into $out"
go build -o "$out/fnmesh" ./cmd/fnmesh
mpicc -O2 -o "$out/osu" bench/mpi/osu.c

# Open MPI refuses root without these; keep everything on loopback TCP.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo)

# One congestion control for all three tools. fnmesh and iperf3 set theirs
# on each socket; Open MPI cannot and takes the network namespace's default.
# Where that differs (BBR on the reference machine), the measurement runs in
# a network namespace of its own whose default is $congestion (the host's
# is left alone); everything measured runs there, so that the three share
# one loopback and one set of TCP settings. MPI_CONGESTION=system keeps
# Open MPI on the system's default instead: an unequal comparison (BBR paces
# bursts of large messages to half the speed), said so in machine.txt.
system_cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
ns=()
netns=
ns_unlike=()
# del_netns ends what still runs in the namespace, then deletes it (on exit,
# whatever the cause). A process left in it would keep it alive after its
# name is gone and go on loading the machine: after a SIGTERM to run.sh
# alone, the fnmesh bench or mpirun it was waiting for.
del_netns() {
	[[ -n $netns ]] || return 0
	local pids sig=TERM
	for _ in $(seq 20); do
		pids=$(ip netns pids "$netns" 2>/dev/null) || break
		[[ -n $pids ]] || break
		# shellcheck disable=SC2086 # one pid a word
		kill -s "$sig" $pids 2>/dev/null || true
		sig=KILL
		sleep 0.25
	done
	ip netns del "$netns" 2>/dev/null || true
	if [[ -n $allowed_before ]]; then
		printf '%s\n' "$allowed_before" >"$allowed_file" 2>/dev/null || true
	fi
}
# A namespace other than the host's may default only to a congestion
# control the host allows every socket (tcp_allowed_congestion_control,
# one list for all namespaces; "reno" and the system default unless
# tuned): allow_cc adds CONGESTION to it for the run, and del_netns puts
# the list back.
allowed_file=/proc/sys/net/ipv4/tcp_allowed_congestion_control
allowed_before=
allow_cc() {
	local allowed
	allowed=$(cat "$allowed_file")
	[[ " $allowed " == *" $congestion "* ]] && return 0
	allowed_before=$allowed
	printf '%s %s\n' "$allowed" "$congestion" >"$allowed_file"
}
# copy_sysctls gives the namespace the host's TCP and socket settings. A new
# network namespace starts most of its net.core.* and net.ipv4.tcp_* from
# the kernel's defaults (tcp_rmem and tcp_wmem from the host's), so a host
# tuned otherwise would be measured on settings it does not run with; those
# the namespace refuses are named in machine.txt (ns_unlike). Settings
# without a per-namespace copy are the host's anyway.
copy_sysctls() {
	local f key skip='net.ipv4.tcp_congestion_control net.ipv4.tcp_ehash_entries net.ipv4.tcp_child_ehash_entries net.ipv4.tcp_fastopen_key net.core.netdev_rss_key'
	local pairs=()
	for f in /proc/sys/net/core/* /proc/sys/net/ipv4/tcp_* /proc/sys/net/ipv4/ip_local_port_range; do
		key=${f#/proc/sys/}
		key=${key//\//.}
		[[ -f $f && -w $f && " $skip " != *" $key "* ]] || continue
		pairs+=("$f" "$(cat "$f" 2>/dev/null)") || true
	done
	# One process in the namespace compares and copies them all, and prints
	# what differs still: "key: host VALUE, namespace VALUE".
	mapfile -t ns_unlike < <(ip netns exec "$netns" bash -c '
		while (($#)); do
			f=$1 want=$2
			shift 2
			have=$(cat "$f" 2>/dev/null) || continue # none of its own: the host'"'"'s
			[[ $have == "$want" ]] && continue
			printf "%s\n" "$want" >"$f" 2>/dev/null
			have=$(cat "$f" 2>/dev/null)
			[[ $have == "$want" ]] || echo "${f#/proc/sys/}: host ${want//$'"'"'\t'"'"'/ }, namespace ${have//$'"'"'\t'"'"'/ }"
		done' copy "${pairs[@]}")
}
case ${MPI_CONGESTION:-same} in
same)
	if [[ $system_cc != "$congestion" ]]; then
		if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null; then
			echo "run.sh: Open MPI would run on the system's $system_cc while fnmesh and iperf3 run $congestion;" \
				"run as root (a network namespace with $congestion as its default) or set MPI_CONGESTION=system" >&2
			exit 1
		fi
		trap del_netns EXIT
		ip netns add "fnmesh-bench-$$"
		netns=fnmesh-bench-$$
		ip -n "$netns" link set lo up mtu "$(cat /sys/class/net/lo/mtu)"
		copy_sysctls
		allow_cc
		ip netns exec "$netns" sysctl -qw net.ipv4.tcp_congestion_control="$congestion"
		ns=(ip netns exec "$netns")
	fi
	;;
system) ;;
esac
mpi_cc=$("${ns[@]}" cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)

{
	echo "date: $(date -u +%FT%TZ)"
	echo "host: $(hostname), $(nproc) CPUs, $(uname -r)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [[ $mpi_cc == "$congestion" ]]; then
		echo "tcp congestion control: $congestion for fnmesh's links, iperf3 and Open MPI (system default $system_cc${ns[*]:+; measured in network namespace $netns})${allowed_before:+; added for the run to tcp_allowed_congestion_control, which was: $allowed_before}"
	else
		echo "tcp congestion control: UNEQUAL: Open MPI $mpi_cc (the system's, MPI_CONGESTION=system), fnmesh's links and iperf3 $congestion"
	fi
	if ((${#ns_unlike[@]})); then
		echo "UNLIKE THE HOST in the namespace (it refused the host's values): ${ns_unlike[*]}"
	fi
	echo "go: $(go version)"
	echo "mpirun: $(mpirun --version 2>&1 | head -n1)"
	echo "iperf3: $(iperf3 --version 2>&1 | head -n1)"
	echo "flags: ${flags[*]:-(defaults)}; fnmesh only: ${fnmesh_only[*]:-(none)}; np: $nps; runs each: $repeat"
} | tee "$out/machine.txt"

# iperf3 on loopback: one TCP stream for 5 s in 1 MiB writes (its largest),
# the kernel's limit for one link (the best of those measured: one before
# each run of both tools at each rank count, so that the ceiling is sampled
# over the same minutes as what it is compared with; a virtual machine's
# speed can drift by half within a run), with the
# congestion control of fnmesh's links (CONGESTION, default cubic, given to
# fnmesh bench -congestion too: see punch.WithCongestionControl), so that the
# ceiling and the links are paced alike; Open MPI runs on the same (see the
# network namespace above), which machine.txt records (BBR paces, and halves
# this ceiling).
iperf() { # iperf OUTFILE
	local port=$((20000 + RANDOM % 20000)) server
	"${ns[@]}" iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
	server=$!
	# Wait (up to 30 s on a loaded machine) until the server listens, then
	# measure once; never leave the server behind.
	for _ in $(seq 300); do
		"${ns[@]}" ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	if ! timeout 60 "${ns[@]}" iperf3 -c 127.0.0.1 -p "$port" -t 5 -l 1M -C "$congestion" -J >"$1"; then
		echo "run.sh: iperf3 failed (see $1)" >&2
	fi
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
}
ceilings=()

: >"$out/fnmesh.csv"
: >"$out/openmpi.csv"
for np in $nps; do
	for rep in $(seq "$repeat"); do
		tag="np$np"
		((repeat > 1)) && tag="np$np-run$rep"
		echo "== iperf3 on loopback (one TCP stream, 5 s, 1 MiB writes, $congestion): the TCP ceiling (before np=$np, run $rep of $repeat)"
		iperf "$out/iperf3-$tag.json"
		grep -q bits_per_second "$out/iperf3-$tag.json" && ceilings+=("$out/iperf3-$tag.json")
		echo "== fnmesh bench, np=$np (run $rep of $repeat)"
		"${ns[@]}" "$out/fnmesh" bench -np "$np" -csv "$out/fnmesh-$tag.csv" -json "$out/fnmesh-$tag.json" \
			-png "$out/fnmesh-$tag.png" -congestion "$congestion" "${flags[@]}" "${fnmesh_only[@]}"
		cat "$out/fnmesh-$tag.csv" >>"$out/fnmesh.csv"
		echo "== Open MPI (bench/mpi/osu.c), np=$np (run $rep of $repeat)"
		"${ns[@]}" "${mpi[@]}" -np "$np" "$out/osu" "${flags[@]}" | tee "$out/openmpi-$tag.csv"
		cat "$out/openmpi-$tag.csv" >>"$out/openmpi.csv"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

echo "== fnmesh / Open MPI"
ceiling=()
((${#ceilings[@]})) && ceiling=(-iperf3 "$(IFS=,; echo "${ceilings[*]}")")
{
	if [[ $mpi_cc != "$congestion" ]]; then
		echo "WARNING: unequal congestion control: Open MPI on $mpi_cc, fnmesh's links on $congestion (MPI_CONGESTION=system)"
		echo
	fi
	"$out/fnmesh" bench compare "${ceiling[@]}" -png "$out/ratio.png" \
		-names fnmesh,openmpi "$out/fnmesh.csv" "$out/openmpi.csv"
} | tee "$out/compare.txt"
echo "== results in $out"
