#!/bin/bash
# client-transports.sh compares the two HTTP/2 servers of the client port:
# grpc-go and h2serve (remote.transport = "h2"), either under the ceiling
# (sextant-bench serve-ceiling --transport T, the wire with no logic) or in
# Sextant itself (DIR/sextant server with SEXTANT_REMOTE_TRANSPORT=T).
# Interleaved rounds of register and query print the rate and the CPU per
# request of the server and of the generator (server_us / gen_us sees
# through the VM's changes of speed); for sextant, each round also pushes to
# 1,000 subscribers. A last step per transport opens CONNS connections that
# each register INSTANCES instances and stay, and prints the server's RSS:
# for the ceiling as the generator saw it at its end; for sextant once every
# instance is registered and again SETTLE seconds later (default 30), with
# MEMORY_LIMIT, if set, as the server's memory_limit. TRANSPORTS chooses
# which (default "grpc h2"). Needs jq and curl.
#
#   go build -o DIR/bench ./cmd/sextant-bench; go build -o DIR/sextant ./cmd/sextant
#   cmd/sextant-bench/client-transports.sh ceiling DIR 3 10000
#   cmd/sextant-bench/client-transports.sh sextant DIR 3 10000 10
#   MEMORY_LIMIT=250MiB cmd/sextant-bench/client-transports.sh sextant DIR 0 10000 10
set -u
MODE=${1:?usage: client-transports.sh ceiling|sextant DIR [ROUNDS] [CONNS] [INSTANCES]}
B=${2:?usage: client-transports.sh ceiling|sextant DIR [ROUNDS] [CONNS] [INSTANCES]}
R=${3:-5}
CONNS=${4:-10000}
INSTANCES=${5:-1}
port=20848
data=$(mktemp -d)
trap 'rm -rf $data' EXIT
start() { # transport
  case $MODE in
    ceiling) $B/bench serve-ceiling --port $port --transport $1 >/dev/null 2>&1 & pid=$! ;;
    sextant) rm -rf $data/d; SEXTANT_MEMORY_LIMIT=${MEMORY_LIMIT:-} SEXTANT_REMOTE_TRANSPORT=$1 $B/sextant server --port $port --data-dir $data/d >$data/log 2>&1 & pid=$! ;;
    *) echo "mode $MODE: want ceiling or sextant" >&2; exit 2 ;;
  esac
  for i in $(seq 100); do curl -sf localhost:$port/nacos/v1/console/health/readiness >/dev/null 2>&1 && return; sleep 0.1; done
}
line() { # kind who json
  echo "$3" | jq -r --arg who $2 --arg kind $1 --arg round ${round:-mem} '
    . as $r | ($r.series[] | select(.name == $r.primary)) as $s |
    "round \($round) \($kind) \($who) ok=\($s.ok) rate=\($s.rate_per_s|floor) server_us=\((($r.process.after.cpu_s - $r.process.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10) gen_us=\((($r.generator.after.cpu_s - $r.generator.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10)"'
}
push() { # who json: the primary series of the push scenario, and CPU per push delivered
  echo "$2" | jq -r --arg who $1 --arg round $round '
    . as $r | ($r.series[] | select(.name == $r.primary)) as $s |
    "round \($round) push \($who) \($s.name) p50=\($s.latency_ms.p50)ms p99=\($s.latency_ms.p99)ms max=\($s.latency_ms.max)ms server_us=\((($r.process.after.cpu_s - $r.process.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10) gen_us=\((($r.generator.after.cpu_s - $r.generator.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10)"'
}
for round in $(seq $R); do
  for who in ${TRANSPORTS:-grpc h2}; do
    start $who
    line r $who "$($B/bench register --target 127.0.0.1:$port --connections 100 --instances 600 --services 1000 --pid $pid --skip-check --quiet --json 2>/dev/null)"
    line q $who "$($B/bench query --target 127.0.0.1:$port --connections 16 --services 100 --instances 10 --duration 6s --pid $pid --quiet --json 2>/dev/null)"
    if [ $MODE = sextant ]; then
      push $who "$($B/bench push --target 127.0.0.1:$port --subscribers 1000 --count 10 --pid $pid --quiet --json 2>/dev/null)"
    fi
    kill $pid; wait $pid 2>/dev/null
  done
done
unset round
rss() { echo $(( $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) / 1024 )); }
for who in ${TRANSPORTS:-grpc h2}; do
  start $who
  if [ $MODE = ceiling ]; then
    j=$($B/bench register --target 127.0.0.1:$port --connections $CONNS --instances $INSTANCES --services 1000 --pid $pid --skip-check --quiet --json 2>/dev/null)
    echo "$j" | jq -r --arg who $who --argjson n $CONNS --argjson i $INSTANCES '"memory \($who) connections=\($n) instances=\($n*$i) rss_before=\(.process.before.rss_bytes/1048576*10|floor/10)MiB rss_after=\(.process.after.rss_bytes/1048576*10|floor/10)MiB per_connection=\(((.process.after.rss_bytes - .process.before.rss_bytes)/$n)|floor)B"'
  else
    before=$(rss)
    $B/bench register --target 127.0.0.1:$port --connections $CONNS --instances $INSTANCES --services 1000 --pid $pid --skip-check --quiet --hold 10m >/dev/null 2>&1 & gen=$!
    until [ "$(curl -s localhost:$port/metrics | awk '/^sextant_instances / {print $2}')" = "$((CONNS * INSTANCES))" ]; do sleep 1; done
    registered=$(rss)
    sleep ${SETTLE:-30}
    echo "memory $who connections=$CONNS instances=$((CONNS * INSTANCES)) memory_limit=${MEMORY_LIMIT:-none} rss_before=${before}MiB rss_registered=${registered}MiB rss_${SETTLE:-30}s_later=$(rss)MiB"
    kill $gen; wait $gen 2>/dev/null
  fi
  kill $pid; wait $pid 2>/dev/null
done
