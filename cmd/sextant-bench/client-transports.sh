#!/bin/bash
# ceiling-transports.sh compares the two HTTP/2 servers the ceiling
# (sextant-bench serve-ceiling) can run on: grpc-go, Sextant's, and h2serve,
# the purpose-built experiment. Interleaved rounds of register and query
# print the rate and the CPU per request of the server and of the generator
# (server_us / gen_us sees through the VM's changes of speed); a last step
# per transport opens CONNS connections that each register one instance
# and stay, and prints the server's RSS per connection. Needs jq.
#
#   go build -o DIR/bench ./cmd/sextant-bench
#   cmd/sextant-bench/ceiling-transports.sh DIR 5 10000
set -u
B=${1:?usage: ceiling-transports.sh DIR [ROUNDS] [CONNS]}
R=${2:-5}
CONNS=${3:-10000}
port=20848
ready() {
  for i in $(seq 100); do curl -sf localhost:$port/nacos/v1/console/health/readiness >/dev/null 2>&1 && return; sleep 0.1; done
}
line() { # kind who json
  echo "$3" | jq -r --arg who $2 --arg kind $1 --arg round ${round:-mem} '
    . as $r | ($r.series[] | select(.name == $r.primary)) as $s |
    "round \($round) \($kind) \($who) ok=\($s.ok) rate=\($s.rate_per_s|floor) server_us=\((($r.process.after.cpu_s - $r.process.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10) gen_us=\((($r.generator.after.cpu_s - $r.generator.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10)"'
}
for round in $(seq $R); do
  for who in grpc h2; do
    $B/bench serve-ceiling --port $port --transport $who >/dev/null 2>&1 & pid=$!
    ready
    line r $who "$($B/bench register --target 127.0.0.1:$port --connections 100 --instances 600 --services 1000 --pid $pid --skip-check --quiet --json 2>/dev/null)"
    line q $who "$($B/bench query --target 127.0.0.1:$port --connections 16 --services 100 --instances 10 --duration 6s --pid $pid --quiet --json 2>/dev/null)"
    kill $pid; wait $pid 2>/dev/null
  done
done
unset round
for who in grpc h2; do
  $B/bench serve-ceiling --port $port --transport $who >/dev/null 2>&1 & pid=$!
  ready
  j=$($B/bench register --target 127.0.0.1:$port --connections $CONNS --instances 1 --services 100 --pid $pid --skip-check --quiet --json 2>/dev/null)
  echo "$j" | jq -r --arg who $who --argjson n $CONNS '"memory \($who) connections=\($n) rss_before=\(.process.before.rss_bytes/1048576*10|floor/10)MiB rss_after=\(.process.after.rss_bytes/1048576*10|floor/10)MiB per_connection=\(((.process.after.rss_bytes - .process.before.rss_bytes)/$n)|floor)B"'
  kill $pid; wait $pid 2>/dev/null
done
