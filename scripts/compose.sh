#!/usr/bin/env bash
# compose.sh [--which | compose arguments...]
#
# Runs Docker Compose whichever way this machine provides it: the
# `docker compose` plugin when it works, else the standalone v1
# `docker-compose`. Our compose files use the Compose Specification format,
# which both understand. `--which` only prints the command that would run.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose.sh: neither 'docker compose' nor 'docker-compose' is available; install docker-compose or the compose plugin" >&2
  exit 1
fi

if [[ ${1:-} == --which ]]; then
  echo "${compose[*]}"
  exit 0
fi

exec "${compose[@]}" "$@"
