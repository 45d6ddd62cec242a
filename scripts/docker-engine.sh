#!/usr/bin/env bash
# docker-engine.sh start|stop|status
#
# Brings up a Docker engine for local modelfn work and CI on machines where
# the engine is installed but not run as a service (no systemd), and takes it
# down again afterwards. It only ever stops an engine it started itself: that
# is recorded in a pid file, so an engine somebody else runs is left alone.
#
#   start   install docker.io/docker-compose if the engine is missing (root
#           only), start dockerd in the background, wait until it answers
#   stop    stop the engine this script started (no-op otherwise)
#   status  say whether an engine answers (exit 0) or not (exit 3)
#
# Files: ${TMPDIR:-/tmp}/modelfn-dockerd.log and ${TMPDIR:-/tmp}/modelfn-dockerd.pid
set -euo pipefail

state_dir="${TMPDIR:-/tmp}"
log_file="$state_dir/modelfn-dockerd.log"
pid_file="$state_dir/modelfn-dockerd.pid"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
start_timeout=60
stop_timeout=30

die() {
  echo "docker-engine.sh: $*" >&2
  exit 1
}

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 15 docker info >/dev/null 2>&1
}

# True when the pid file names a live dockerd process.
our_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid="$(<"$pid_file")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && "$(<"/proc/$pid/comm")" == dockerd ]] || return 1
  printf '%s\n' "$pid"
}

print_compose() {
  local cmd
  if cmd="$("$script_dir/compose.sh" --which 2>/dev/null)"; then
    echo "compose: $cmd"
  else
    echo "compose: none available (install docker-compose or the docker compose plugin)"
  fi
}

install_missing() {
  local -a pkgs=()
  command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    pkgs+=(docker-compose)
  fi
  ((${#pkgs[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "no Docker engine here and not root: install ${pkgs[*]} (or start an engine) first"
  echo "docker engine: installing ${pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

cmd_start() {
  if engine_answers; then
    echo "docker engine: already running"
    print_compose
    return 0
  fi
  if [[ $EUID -ne 0 ]]; then
    command -v dockerd >/dev/null 2>&1 || die "no Docker engine here and not root: install docker.io (or start an engine) first"
    die "no Docker engine answers and starting dockerd needs root"
  fi
  install_missing
  command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"

  # A pid file whose process is gone is stale: forget it.
  if [[ -f $pid_file ]] && ! our_pid >/dev/null; then
    rm -f "$pid_file"
  fi

  local pid
  if ! pid="$(our_pid)"; then
    # setsid: the engine must outlive this shell and its process group.
    # Without job control the child is no group leader, so setsid execs
    # dockerd in place and $! is dockerd's own pid.
    setsid dockerd >>"$log_file" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$pid_file"
  fi

  local waited=0
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      echo "docker-engine.sh: dockerd exited during start-up; last lines of $log_file:" >&2
      tail -n 15 "$log_file" >&2 || true
      exit 1
    fi
    if ((waited >= start_timeout)); then
      die "dockerd (pid $pid) did not answer within ${start_timeout}s; see $log_file"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "docker engine: started dockerd (pid $pid, log $log_file)"
  print_compose
}

cmd_stop() {
  local pid
  if ! [[ -f $pid_file ]]; then
    if engine_answers; then
      echo "docker engine: running but not started by this script; leaving it alone"
    fi
    return 0
  fi
  if ! pid="$(our_pid)"; then
    rm -f "$pid_file"   # stale: the process we started is already gone
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || die "cannot signal dockerd (pid $pid): permission denied; run stop as the user who started it"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= stop_timeout)); then
      die "dockerd (pid $pid) still running ${stop_timeout}s after SIGTERM; see $log_file"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$pid_file"
  echo "docker engine: stopped dockerd (pid $pid)"
}

cmd_status() {
  local pid version
  if engine_answers; then
    version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
    if pid="$(our_pid)"; then
      echo "docker engine: running (server $version, started by this script, pid $pid)"
    else
      echo "docker engine: running (server $version, not started by this script)"
    fi
    print_compose
    return 0
  fi
  echo "docker engine: not running"
  print_compose
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $(basename "$0") start|stop|status" >&2
    exit 2
    ;;
esac
