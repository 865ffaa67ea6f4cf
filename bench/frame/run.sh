#!/usr/bin/env bash
# Cylon's join benchmark, fnmesh beside DuckDB, in one run:
#   1. the loopback TCP ceiling with iperf3 (installed from Debian if missing)
#   2. fnmesh weak scaling (ROWS per worker, WORKERS worker processes over a
#      rendezvous server on loopback), writing the inputs of the largest run
#      as Parquet, and a PNG plot
#   3. fnmesh strong scaling (ROWS x largest worker count rows in total)
#   4. DuckDB (bench/duckdb, its own Go module) on those Parquet files with as
#      many threads as the largest worker count
#   5. the comparison against the targets (join within 2x of DuckDB, exchange
#      at >= 70% of the loopback ceiling)
# Usage: bench/frame/run.sh            (ROWS=9100000 WORKERS=1,2 REPS=3)
#        ROWS=1000000 bench/frame/run.sh   (a quick run)
# Results land in bench/out/frame/. Figures need a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${ROWS:-9100000}
WORKERS=${WORKERS:-1,2}
REPS=${REPS:-3}
OUT=${OUT:-bench/out/frame}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
maxw=$(tr ',' '\n' <<<"$WORKERS" | sort -n | tail -1)

echo "== building"
go build -o "$OUT/framebench" ./bench/frame
(cd bench/duckdb && go build -o "$OUT/duckbench" .)

echo "== loopback TCP ceiling (iperf3)"
iperf_bps=0
if ! command -v iperf3 >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null || true
fi
if command -v iperf3 >/dev/null; then
	port=$((20000 + RANDOM % 20000))
	iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
	srv=$!
	sleep 0.5
	# With the congestion control of fnmesh's links (punch.DefaultCongestionControl).
	if out=$(iperf3 -c 127.0.0.1 -p "$port" -t 5 -C "${CONGESTION:-cubic}" -J 2>/dev/null); then
		iperf_bps=$(grep -A8 '"sum_received"' <<<"$out" | grep -m1 bits_per_second | awk -F: '{ gsub(/[ \t,]/, "", $2); print $2 }')
		echo "iperf3: $(awk -v b="$iperf_bps" 'BEGIN { printf "%.2f GB/s", b / 8e9 }') one stream, one way"
	fi
	wait "$srv" 2>/dev/null || true
else
	echo "iperf3 not available: only the Go loopback ceiling below"
fi

echo "== fnmesh, weak scaling: $ROWS rows per table per worker, workers $WORKERS"
rm -rf "$OUT/data"
"$OUT/framebench" -workers "$WORKERS" -rows "$ROWS" -reps "$REPS" -data "$OUT/data" \
	-json "$OUT/weak.json" -plot "$OUT/weak.png"

echo "== fnmesh, strong scaling: $((ROWS * maxw)) rows per table in total, workers $WORKERS"
"$OUT/framebench" -scaling strong -workers "$WORKERS" -rows $((ROWS * maxw)) -reps "$REPS" -groupby=false \
	-ceiling-mb 0 -json "$OUT/strong.json" -plot "$OUT/strong.png"

echo "== DuckDB, $maxw threads, same data"
"$OUT/duckbench" -data "$OUT/data" -threads "$maxw" -reps "$REPS" -json "$OUT/duckdb.json"

"$OUT/framebench" -compare "$OUT/weak.json,$OUT/duckdb.json" -iperf-bps "$iperf_bps"
rm -rf "$OUT/data"
