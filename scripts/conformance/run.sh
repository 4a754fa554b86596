#!/usr/bin/env bash
# Runs the official ARP conformance checker (arp-conformance 0.3.7, from PyPI, in a git-ignored venv)
# against the built service on free loopback ports, with --strict: any FAIL, WARN or SKIP fails.
#   1. auth off (ARP_AUTH_* unset): smoke and surface.
#   2. auth on: a loopback issuer (scripts/conformance/issuer.mjs: JWKS + one RS256 token) and a second
#      service with ARP_AUTH_MODE=required against it. smoke WITHOUT credentials (health and version
#      are public); a probe that /v1/runs/x answers 401 without a token and with a forged one, and 404
#      with the token (scripts/conformance/auth_checks.py); surface with
#      --headers "Authorization=Bearer <token>", whose exchanges must all reach the handlers (no 401/403).
# Every process is bounded (timeout) and killed on exit; the exit status is 1 if any step failed.
#   scripts/conformance/run.sh [extra checker options]   # uses .venv-conformance, creating it when missing
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/conformance"
venv="$root/.venv-conformance"
python=${PYTHON:-python3}
life=600 # seconds any helper process may live, even if this script is killed without cleanup
check_timeout=180

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import arp_conformance' 2>/dev/null; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check arp-conformance==0.3.7
fi
py="$venv/bin/python"

node "$root/scripts/ensure-build.mjs"
if [ -n "${RC_DATABASE_URL:-}" ]; then echo "== the service keeps its Runs in PostgreSQL (RC_DATABASE_URL)"; fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The services run without any ARP_AUTH_* from our environment; the auth run sets its own.
no_auth_env=()
while IFS= read -r name; do no_auth_env+=(-u "$name"); done < <(compgen -e | grep '^ARP_AUTH_' || true)

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_service NAME PORT [VAR=VALUE ...]: starts dist/server.js in the background, waits until
# /v1/health answers (10 s at most); sets $server_pid.
start_service() {
  local name=$1 port=$2
  shift 2
  local log="$tmp/$name.log"
  env ${no_auth_env[@]+"${no_auth_env[@]}"} "$@" \
    timeout "$life" node "$root/dist/server.js" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 100); do
    # With RC_DATABASE_URL, ready means its startup line names PostgreSQL (not the memory store).
    if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/health', timeout=1)" 2>/dev/null &&
      { [ -z "${RC_DATABASE_URL:-}" ] || grep -q 'ready: PostgreSQL' "$log"; }; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the service ($name) exited during startup:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the service ($name) did not answer /v1/health within 10 s:" >&2
  cat "$log" >&2
  return 1
}

check() {
  timeout "$check_timeout" "$py" "$here/arp_conformance_fixed.py" check run-coordinator "$@"
}

status=0

echo "### auth off"
port=$(free_port)
start_service plain "$port"
for tier in smoke surface; do
  echo "== arp-conformance check run-coordinator --tier $tier --strict"
  check --url "http://127.0.0.1:$port" --tier "$tier" --strict "$@" || status=1
done

echo
echo "### auth on (ARP_AUTH_MODE=required, loopback JWKS)"
timeout "$life" node "$here/issuer.mjs" serve --audience arp-run-coordinator --ttl 900 \
  >"$tmp/issuer.json" 2>"$tmp/issuer.log" &
issuer_pid=$!
pids+=("$issuer_pid")
issuer_ready=false
for _ in $(seq 1 100); do
  if "$py" -c 'import json,sys; json.loads(open(sys.argv[1]).readline())' "$tmp/issuer.json" 2>/dev/null; then
    issuer_ready=true
    break
  fi
  kill -0 "$issuer_pid" 2>/dev/null || break
  sleep 0.1
done
if ! $issuer_ready; then
  echo "the issuer did not start within 10 s:" >&2
  cat "$tmp/issuer.log" >&2
  exit 1
fi
field() { "$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$tmp/issuer.json" "$1"; }
jwks_uri=$(field jwks_uri)
issuer=$(field issuer)
token=$(field token)
echo "issuer $issuer, JWKS $jwks_uri, audience arp-run-coordinator"

auth_port=$(free_port)
start_service auth "$auth_port" ARP_AUTH_MODE=required ARP_AUTH_JWKS_URI="$jwks_uri" \
  ARP_AUTH_ISSUER="$issuer" ARP_AUTH_AUDIENCE=arp-run-coordinator
auth_url="http://127.0.0.1:$auth_port"

echo "== arp-conformance check run-coordinator --tier smoke --strict   (no credentials)"
check --url "$auth_url" --tier smoke --strict "$@" || status=1

echo "== auth is on: a protected route without, with a forged and with the token"
timeout 60 "$py" "$here/auth_checks.py" probe "$auth_url" "$token" || status=1

echo "== arp-conformance check run-coordinator --tier surface --strict --headers 'Authorization=Bearer <token>'"
surface_ok=true
check --url "$auth_url" --tier surface --strict "$@" \
  --headers "Authorization=Bearer $token" --format json --out "$tmp/surface-auth.json" >/dev/null || surface_ok=false
if [ -s "$tmp/surface-auth.json" ]; then
  "$py" "$here/auth_checks.py" report "$tmp/surface-auth.json" || surface_ok=false
else
  echo "the checker wrote no report" >&2
  surface_ok=false
fi
$surface_ok || status=1

if grep -q '"level":[56]0' "$tmp/auth.log"; then
  echo "the auth service logged errors:" >&2
  grep '"level":[56]0' "$tmp/auth.log" >&2
  status=1
fi

echo
if [ "$status" -eq 0 ]; then echo "conformance: all checks passed"; else echo "conformance: FAILED" >&2; fi
exit "$status"
