#!/usr/bin/env bash
# bench/mpi/run.sh: fnmesh's collectives side by side with Open MPI, on this
# machine, in one run.
#
# Installs what it needs (Debian: openmpi-bin libopenmpi-dev iperf3; as root),
# builds fnmesh and the OSU-method C harness (bench/mpi/osu.c), measures the
# loopback TCP ceiling with iperf3, runs `fnmesh bench` and the harness under
# mpirun (TCP on loopback) at each rank count, and prints the ratios of times
# (fnmesh / Open MPI; <= 1.0: fnmesh at least as fast) per operation and size,
# with the targets of issue 4.
#
# usage: bench/mpi/run.sh [-np "2 4"] [-out DIR] [bench flags...]
#   bench flags go to both tools unchanged: -ops, -min, -max, -iters, -warmup,
#   -iters-large, -warmup-large, -large, -window, -bw-iters-large,
#   -bw-warmup-large (see `fnmesh bench -h`).
# e.g. a quick look: bench/mpi/run.sh -max 1M -iters 200 -warmup 20
#
# Results land in DIR (default bench/results/<date>-<time>): iperf3.json,
# fnmesh.csv/.json/.png, openmpi.csv, compare.txt and ratio.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

nps="2 4"
out="bench/results/$(date +%Y%m%d-%H%M%S)"
while (($#)); do
	case $1 in
	-np) nps=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	*) break ;;
	esac
done
flags=("$@")

need=()
command -v mpicc >/dev/null || need+=(openmpi-bin libopenmpi-dev)
command -v mpirun >/dev/null || need+=(openmpi-bin)
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

{
	echo "date: $(date -u +%FT%TZ)"
	echo "host: $(hostname), $(nproc) CPUs, $(uname -r)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "go: $(go version)"
	echo "mpirun: $(mpirun --version 2>&1 | head -n1)"
	echo "iperf3: $(iperf3 --version 2>&1 | head -n1)"
	echo "flags: ${flags[*]:-(defaults)}; np: $nps"
} | tee "$out/machine.txt"

echo "== iperf3 on loopback (one TCP stream, 5 s): the TCP ceiling"
port=$((20000 + RANDOM % 20000))
iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
server=$!
# Wait (up to 30 s on a loaded machine) until the server listens, then
# measure once; never leave the server behind.
for _ in $(seq 300); do
	ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
	sleep 0.1
done
if ! timeout 60 iperf3 -c 127.0.0.1 -p "$port" -t 5 -J >"$out/iperf3.json"; then
	echo "run.sh: iperf3 failed (see $out/iperf3.json); the ceiling will be missing" >&2
fi
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true

: >"$out/fnmesh.csv"
: >"$out/openmpi.csv"
for np in $nps; do
	echo "== fnmesh bench, np=$np"
	"$out/fnmesh" bench -np "$np" -csv "$out/fnmesh-np$np.csv" -json "$out/fnmesh-np$np.json" \
		-png "$out/fnmesh-np$np.png" "${flags[@]}"
	cat "$out/fnmesh-np$np.csv" >>"$out/fnmesh.csv"
	echo "== Open MPI (bench/mpi/osu.c), np=$np"
	"${mpi[@]}" -np "$np" "$out/osu" "${flags[@]}" | tee "$out/openmpi-np$np.csv"
	cat "$out/openmpi-np$np.csv" >>"$out/openmpi.csv"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

echo "== fnmesh / Open MPI"
ceiling=()
grep -q bits_per_second "$out/iperf3.json" 2>/dev/null && ceiling=(-iperf3 "$out/iperf3.json")
"$out/fnmesh" bench compare "${ceiling[@]}" -png "$out/ratio.png" \
	-names fnmesh,openmpi "$out/fnmesh.csv" "$out/openmpi.csv" | tee "$out/compare.txt"
echo "== results in $out"
