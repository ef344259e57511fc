#!/usr/bin/env bash
# transports.sh: the cluster transports side by side, in one run. For each of
# grpctransport (direct gRPC) and natstransport (through a NATS server started
# here), ROUNDS times in turn, it starts three nodes on loopback and measures
#   - cross-node visibility: sextant-bench visibility, a change on one node
#     seen by the subscribers of the others (SEXTANT_CLUSTER_SYNC_DELAY=10ms and
#     SEXTANT_PUSH_DELAY=0s, so the transport is what is measured);
#   - snapshot load: node 1 holds INSTANCES instances (sextant-bench register
#     --hold), node 3 has them; node 3 is restarted RESTARTS times and its
#     sextant_distro_snapshot_load_seconds read each time.
# It prints one line per transport and round. Needs go, curl and jq.
#
#   cmd/sextant-bench/transports.sh            # ROUNDS=2 RESTARTS=3 INSTANCES=100000
set -euo pipefail

ROUNDS=${ROUNDS:-2}
RESTARTS=${RESTARTS:-3}
INSTANCES=${INSTANCES:-100000} # as 100 connections, INSTANCES/100 services each
VISIBILITY_ROUNDS=${VISIBILITY_ROUNDS:-30}
BASE=${BASE:-28848} # HTTP ports BASE, BASE+10, BASE+20; NATS on BASE-4626 (24222)

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/sextant-transports.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

cd "$root"
go build -o "$work/sextant" ./cmd/sextant
go build -o "$work/sextant-bench" ./cmd/sextant-bench
go build -o "$work/nats-server" github.com/nats-io/nats-server/v2

nats_port=$((BASE - 4626))
"$work/nats-server" -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
pids+=($!)

ports=("$BASE" $((BASE + 10)) $((BASE + 20)))
members=$(printf '127.0.0.1:%s,' "${ports[@]}")
members=${members%,}
cat >"$work/natstransport.hcl" <<EOF
cluster {
  transport = "natstransport"
}
plugins {
  natstransport {
    config {
      servers = ["nats://127.0.0.1:$nats_port"]
    }
  }
}
EOF

declare -A node_pid
# start_node TRANSPORT I: starts node I (0-2) and waits until it is ready.
start_node() {
	local port=${ports[$2]} config=()
	[ "$1" = natstransport ] && config=(--config "$work/natstransport.hcl")
	SEXTANT_CLUSTER_SYNC_DELAY=10ms SEXTANT_PUSH_DELAY=0s \
		"$work/sextant" server --port "$port" --data-dir "$work/data-$1-$port" --members "$members" \
		"${config[@]}" >>"$work/$1-$port.log" 2>&1 &
	node_pid[$2]=$!
	pids+=($!)
	for _ in $(seq 600); do
		curl -sf "http://127.0.0.1:$port/nacos/v1/console/health/readiness" >/dev/null && return
		sleep 0.1
	done
	echo "node on $port not ready after 60s" >&2
	exit 1
}

metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

for round in $(seq "$ROUNDS"); do
	for tr in grpctransport natstransport; do
		rm -rf "$work"/data-*
		for i in 0 1 2; do start_node "$tr" "$i"; done

		targets=()
		for p in "${ports[@]}"; do targets+=(--target "127.0.0.1:$p"); done
		vis=$("$work/sextant-bench" visibility "${targets[@]}" --count "$VISIBILITY_ROUNDS" --merge-window 0s --json --quiet |
			jq -r '.series[] | select(.name == "visible other node") | "\(.latency_ms.p50 * 10 | round / 10) / \(.latency_ms.p99 * 10 | round / 10)"')

		"$work/sextant-bench" register --target "127.0.0.1:${ports[0]}" --connections 100 --instances $((INSTANCES / 100)) \
			--services $((INSTANCES / 100)) --hold 1h --quiet >"$work/register.json" 2>&1 &
		gen=$!
		pids+=($gen)
		for _ in $(seq 1200); do
			n=$(metric "${ports[2]}" sextant_instances)
			[ "${n%.*}" -ge "$INSTANCES" ] 2>/dev/null && break
			sleep 0.5
		done
		loads=()
		for _ in $(seq "$RESTARTS"); do
			kill "${node_pid[2]}"
			wait "${node_pid[2]}" 2>/dev/null || true
			start_node "$tr" 2
			loads+=("$(metric "${ports[2]}" sextant_distro_snapshot_load_seconds | awk '{ printf "%.2f", $1 }')")
		done
		for pid in "$gen" "${node_pid[@]}"; do
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		done
		pids=("${pids[0]}") # the NATS server
		echo "round $round  $tr  visibility other node p50/p99 ms: $vis  snapshot load of $INSTANCES instances (s): ${loads[*]}"
	done
done
