#!/usr/bin/env bash
# bench/userland-proxy.sh: iris through the gateway (npm run up) with Docker's userland port proxy
# on (the default: docker-proxy copies every byte between 127.0.0.1 and the gateway's container)
# and off (`dockerd --userland-proxy=false`: the published port goes through iptables NAT), side by
# side, alternating twice, on the same stack. Writes bench/results/userland-proxy.md.
#
# It restarts the engine between rounds, so it runs only on an engine started by
# scripts/docker-engine.sh (or none): never on an engine something else relies on. Root only.
#
#   bash bench/userland-proxy.sh [seconds per run, default 8]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-8}"
work="$(mktemp -d)"
report=bench/results/userland-proxy.md
export MODELFN_PORT="${MODELFN_PORT:-18123}" MODELFN_PROJECT="modelfn-userland-proxy-$$"
url="http://127.0.0.1:$MODELFN_PORT/v2/models/iris/infer"
body='{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}'
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' "'$body'" >"$work/iris.lua"

if docker info >/dev/null 2>&1 && ! [[ -f "${TMPDIR:-/tmp}/modelfn-dockerd.pid" ]]; then
  echo "userland-proxy.sh: an engine runs that scripts/docker-engine.sh did not start: not restarting it" >&2
  exit 1
fi
answers() { for _ in $(seq 1 120); do curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d "$body" "$url" && return 0; sleep 1; done; return 1; }
rows=()
measure() { # $1: round, $2: proxy on|off
  wrk -t1 -c64 -d2s -s "$work/iris.lua" "$url" >/dev/null 2>&1
  for c in 64 1; do
    out="$(wrk -t1 -c"$c" -d"${seconds}s" --latency -s "$work/iris.lua" "$url" 2>&1)"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '/ 50%/ {print $2}' <<<"$out")"
    errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd ';' -)"
    rows+=("| $1 | $2 | $c | $rps | $p50 | $(pgrep -c docker-proxy || true) | ${errors:-none} |")
    echo "round $1, userland proxy $2, c$c: $rps req/s, p50 $p50"
  done
}
noproxy_pid=""
start_noproxy() {
  setsid dockerd --userland-proxy=false >>"$work/dockerd.log" 2>&1 </dev/null &
  noproxy_pid=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
stop_noproxy() { kill -TERM "$noproxy_pid"; for _ in $(seq 1 60); do kill -0 "$noproxy_pid" 2>/dev/null || return 0; sleep 1; done; }

scripts/docker-engine.sh start >/dev/null
npm run up >"$work/up.log" 2>&1 || { tail -20 "$work/up.log"; exit 1; }
for round in 1 2; do
  answers && measure "$round" on
  scripts/docker-engine.sh stop >/dev/null
  start_noproxy && answers && measure "$round" off
  stop_noproxy
  scripts/docker-engine.sh start >/dev/null
done
answers
npm run down >"$work/down.log" 2>&1
scripts/docker-engine.sh stop >/dev/null

{
  echo '# Gateway with and without Docker'"'"'s userland port proxy'
  echo
  echo "\`bash bench/userland-proxy.sh $seconds\` ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores): iris through the gateway of"
  echo "\`npm run up\` (nginx 1.30 + one function container, compose), \`wrk -t1 -c{64,1} -d${seconds}s --latency\` on"
  echo "\`$url\`, alternating the engine between its default (\`docker-proxy\` relays the published"
  echo 'port) and `dockerd --userland-proxy=false` (iptables NAT relays it), the same containers (restarted with'
  echo 'the engine). `docker-proxy` column: such processes running during the run.'
  echo
  echo '| round | userland proxy | connections | req/s | p50 | docker-proxy | errors |'
  echo '| --- | --- | --- | --- | --- | --- | --- |'
  printf '%s\n' "${rows[@]}"
} >"$report"
rm -rf "$work"
echo "wrote $report"
