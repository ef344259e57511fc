#!/bin/bash
# ceiling-rounds.sh runs interleaved rounds of register and query against
# the ceiling (sextant-bench serve-ceiling) and two builds of sextant, each
# freshly started, and prints one line per run: the rate, and the CPU per
# request of the server and of the generator. The generator does the same
# work whatever it talks to, so server_us / gen_us compares runs across the
# VM's changes of speed. TRANSPORT (grpc, the default, or h2) is the client
# port's transport of all three. Needs curl and jq.
#
#   go build -o DIR/before ./cmd/sextant    (in the checkout to compare with)
#   go build -o DIR/after ./cmd/sextant && go build -o DIR/bench ./cmd/sextant-bench
#   cmd/sextant-bench/ceiling-rounds.sh DIR 5
set -u
B=${1:?usage: ceiling-rounds.sh DIR [ROUNDS]}
R=${2:-5}
port=20848
for round in $(seq $R); do
  for who in ceiling before after; do
    if [ $who = ceiling ]; then
      $B/bench serve-ceiling --port $port --transport ${TRANSPORT:-grpc} >/dev/null 2>&1 & pid=$!
      skip="--skip-check"
    else
      d=$(mktemp -d); SEXTANT_REMOTE_TRANSPORT=${TRANSPORT:-grpc} $B/$who server --port $port --data-dir $d >/dev/null 2>&1 & pid=$!
      skip=""
    fi
    for i in $(seq 100); do curl -sf localhost:$port/nacos/v1/console/health/readiness >/dev/null 2>&1 && break; sleep 0.1; done
    r=$($B/bench register --target 127.0.0.1:$port --connections 100 --instances 600 --services 1000 --pid $pid $skip --quiet --json 2>/dev/null)
    q=$($B/bench query --target 127.0.0.1:$port --connections 16 --services 100 --instances 10 --duration 6s --pid $pid --quiet --json 2>/dev/null)
    for kind in r q; do
      j=${!kind}
      echo "$j" | jq -r --arg who $who --arg kind $kind --arg round $round '
        . as $r | ($r.series[] | select(.name == $r.primary)) as $s |
        "round \($round) \($kind) \($who) ok=\($s.ok) rate=\($s.rate_per_s|floor) server_us=\((($r.process.after.cpu_s - $r.process.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10) gen_us=\((($r.generator.after.cpu_s - $r.generator.measure_start.cpu_s) / $s.ok * 1e6 * 10 | floor) / 10)"'
    done
    kill $pid; wait $pid 2>/dev/null
    [ $who != ceiling ] && rm -rf $d
  done
done
