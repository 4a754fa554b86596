#!/usr/bin/env bash
# Fuzzes the built service with schemathesis (PyPI, pinned, in the git-ignored .venv-fuzz): every
# operation of its /openapi.json (and, auth off, of the listing API's /rc/openapi.json), in the coverage, fuzzing and stateful phases, with the checks
# not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance and unsupported_method (an undeclared method must get 405 with Allow).
# Settings (fixed seed, cases per operation) are in scripts/fuzz/schemathesis.toml;
# scripts/fuzz/hooks.py links the operations for the stateful phase.
#   1. auth off (ARP_AUTH_* unset).
#   2. ARP_AUTH_MODE=required against a loopback JWKS (scripts/conformance/issuer.mjs), every
#      request with a valid bearer token, plus the ignored_auth check (protected operations must
#      refuse requests without or with a broken token).
# Any finding, error or logged service error fails the run. Each run is bounded in time
# (FUZZ_RUN_TIMEOUT seconds, default 400) and every process is killed on exit.
#   scripts/fuzz/run.sh [extra `st run` options, e.g. --report har --report-dir "$PWD/fuzz-report"]
# (schemathesis runs in a temporary directory: give report paths as absolute paths.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/fuzz"
venv="$root/.venv-fuzz"
python=${PYTHON:-python3}
version=4.32.5
# Every finding of these fails the run; nothing is excluded.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method
run_timeout=${FUZZ_RUN_TIMEOUT:-400}
life=$((2 * run_timeout + 120)) # seconds any helper process may live, even if this script is killed

installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true
}
if [ ! -x "$venv/bin/st" ] || [ "$(installed)" != "$version" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
py="$venv/bin/python"

(cd "$root" && npm run --silent build)

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

# start_service NAME PORT [VAR=VALUE ...]: starts dist/server.js in the background and waits until
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
    if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/health', timeout=1)" 2>/dev/null; then
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

# fuzz NAME URL AUTHORIZATION [st options...]: one schemathesis run against the service NAME over the
# document at $FUZZ_DOCUMENT (default openapi.json, the contract), then the verdict over its event
# log; a service that died or logged errors fails the run too.
fuzz() {
  local name=$1 url=$2 authorization=$3
  shift 3
  local work ok=true
  work=$(mktemp -d "$tmp/st-$name.XXXX")
  # cwd: Hypothesis keeps its caches in ./.hypothesis, which must not land in the checkout.
  (
    cd "$work"
    FUZZ_BASE_URL="$url" FUZZ_AUTHORIZATION="$authorization" SCHEMATHESIS_HOOKS="$here/hooks.py" \
      timeout "$run_timeout" "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$url/${FUZZ_DOCUMENT:-openapi.json}" \
      --no-color --report-ndjson-path "$work/events.ndjson" "$@"
  ) || ok=false
  "$py" "$here/verdict.py" "$work/events.ndjson" || ok=false
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the service ($name) is no longer running:" >&2
    tail -n 50 "$tmp/$name.log" >&2
    ok=false
  elif grep -q '"level":[56]0' "$tmp/$name.log"; then
    echo "the service ($name) logged errors:" >&2
    grep '"level":[56]0' "$tmp/$name.log" >&2
    ok=false
  fi
  $ok
}

status=0
started=$SECONDS

echo "### auth off"
port=$(free_port)
start_service plain "$port"
fuzz plain "http://127.0.0.1:$port" "" --checks "$checks" "$@" || status=1
echo "(auth off: $((SECONDS - started)) s)"

echo
echo "### the listing API (rc/openapi.json), auth off, over the Runs the contract's run left"
started=$SECONDS
FUZZ_DOCUMENT=rc/openapi.json fuzz plain "http://127.0.0.1:$port" "" --checks "$checks" "$@" || status=1
echo "(listing: $((SECONDS - started)) s)"

echo
echo "### auth on (ARP_AUTH_MODE=required, loopback JWKS, a valid bearer token)"
started=$SECONDS
timeout "$life" node "$root/scripts/conformance/issuer.mjs" serve --audience arp-run-coordinator \
  --ttl $((life + 60)) >"$tmp/issuer.json" 2>"$tmp/issuer.log" &
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
token=$(field token)
auth_port=$(free_port)
start_service auth "$auth_port" ARP_AUTH_MODE=required ARP_AUTH_JWKS_URI="$(field jwks_uri)" \
  ARP_AUTH_ISSUER="$(field issuer)" ARP_AUTH_AUDIENCE=arp-run-coordinator
fuzz auth "http://127.0.0.1:$auth_port" "Bearer $token" \
  --header "Authorization: Bearer $token" --checks "$checks,ignored_auth" "$@" || status=1
echo "(auth on: $((SECONDS - started)) s)"

echo
if [ "$status" -eq 0 ]; then echo "fuzz: no findings"; else echo "fuzz: FAILED" >&2; fi
exit "$status"
