#!/usr/bin/env bash
# Starts the built service on a free loopback port and runs the official ARP conformance checker
# (arp-conformance 0.3.7, from PyPI, in a git-ignored venv) at the smoke and surface tiers with
# --strict: any FAIL, WARN or SKIP fails this script.
#   scripts/conformance/run.sh            # uses .venv-conformance, creating it when missing
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv-conformance"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import arp_conformance' 2>/dev/null; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check arp-conformance==0.3.7
fi

node "$root/scripts/ensure-build.mjs"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp)
node "$root/dist/server.js" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v1/health', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "the service exited during startup:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

status=0
for tier in smoke surface; do
  echo "== arp-conformance check run-coordinator --tier $tier --strict"
  "$venv/bin/python" "$root/scripts/conformance/arp_conformance_fixed.py" check run-coordinator \
    --url "http://127.0.0.1:$port" --tier "$tier" --strict "$@" || status=1
done
exit "$status"
