#!/usr/bin/env bash
# Interop suite against the reference JARVIS services (PyPI 0.3.8, on arp-standard 0.3.7).
# Starts on free loopback ports: the Atomic Executor, the Node Registry (SQLite in a temp dir), an
# allow-all PDP, a policy-file PDP (with a stub token service, because it fetches NodeTypes from the
# registry with a client-credentials token), and two coordinators from dist/ (one per PDP). Then
# runs scripts/interop/driver.py, which drives the coordinators with the official Python client.
# Everything it started is stopped on exit; service logs are printed when anything fails.
#   scripts/interop/run.sh            # uses .venv-interop, creating it when missing
#   INTEROP_LOG_DIR=DIR scripts/interop/run.sh   # also keeps every service's log in DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv-interop"
py="$venv/bin/python"
python=${PYTHON:-python3}
packages=(arp-jarvis-atomic-executor==0.3.8 arp-jarvis-node-registry==0.3.8 arp-jarvis-pdp==0.3.8
  arp-standard-client==0.3.7)

# Only the settings given below reach the services; with RC_DATABASE_URL the coordinators keep their
# Runs in that PostgreSQL database, each in a schema of its own.
database_url="${RC_DATABASE_URL:-}"
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(ARP_|JARVIS_|RC_)' || true)

installed() {
  [ -x "$py" ] && "$py" - "${packages[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
EOF
}
if ! installed; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi
node "$root/scripts/ensure-build.mjs"

work=$(mktemp -d)
pids=()
names=()
logs=()

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    local pid=${pids[$i]} n
    for n in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${INTEROP_LOG_DIR:-}" ]; then mkdir -p "$INTEROP_LOG_DIR" && cp "${logs[@]}" "$INTEROP_LOG_DIR"/ || true; fi
  if [ "$status" -ne 0 ]; then
    for i in "${!logs[@]}"; do
      echo
      echo "===== log: ${names[$i]} (last 200 lines) ====="
      tail -n 200 "${logs[$i]}" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r AE NR PDP_ALLOW PDP_DENY STS RC RC_DENY < <("$py" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)

# start NAME COMMAND...: runs COMMAND in the background with its output in $work/NAME.log.
start() {
  local name=$1
  shift
  local log="$work/$name.log"
  "$@" >"$log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  logs+=("$log")
}

# wait_health NAME PORT: polls /v1/health for up to 30 s; fails if the process exits first.
wait_health() {
  local name=$1 port=$2 i idx
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$name" ] && idx=$i; done
  for i in $(seq 1 150); do
    # A coordinator on PostgreSQL is ready once its startup line names PostgreSQL.
    if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/health', timeout=1)" \
      2>/dev/null && { [ -z "$database_url" ] || [[ $name != coordinator* ]] || grep -q 'ready: PostgreSQL' "${logs[$idx]}"; }; then
      echo "== $name up on 127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "${pids[$idx]}" 2>/dev/null; then
      echo "$name exited during startup" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "$name did not answer /v1/health within 30 s" >&2
  return 1
}

cat >"$work/policy.json" <<'EOF'
{"Version": "interop-1", "Statement": [
  {"Sid": "AllowAll", "Effect": "Allow", "Action": ["run.start", "node.run.execute"], "Resource": "*"},
  {"Sid": "DenySleepExecute", "Effect": "Deny", "Action": "node.run.execute", "Resource": "node_type:jarvis.core.sleep"},
  {"Sid": "DenyUuidStart", "Effect": "Deny", "Action": "run.start", "Resource": "node_type:jarvis.core.uuid4"}
]}
EOF

# A stub OAuth2 token endpoint: any client_credentials request gets a token. The registry runs with
# auth disabled, so the token only has to exist.
cat >"$work/sts.py" <<'EOF'
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"access_token": "interop", "token_type": "Bearer", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):  # /v1/health, for wait_health
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF

export PYTHONUNBUFFERED=1
start sts "$py" "$work/sts.py" "$STS"
start atomic-executor env ARP_AUTH_PROFILE=dev-insecure \
  "$py" -m jarvis_atomic_executor --host 127.0.0.1 --port "$AE"
start node-registry env ARP_AUTH_PROFILE=dev-insecure JARVIS_NODE_REGISTRY_DB_URL="sqlite:///$work/nr.sqlite" \
  "$py" -m jarvis_node_registry --host 127.0.0.1 --port "$NR"
start pdp-allow env ARP_AUTH_PROFILE=dev-insecure JARVIS_POLICY_PROFILE=dev-allow \
  "$py" -m jarvis_pdp --host 127.0.0.1 --port "$PDP_ALLOW"
start pdp-deny env ARP_AUTH_PROFILE=dev-insecure JARVIS_POLICY_PATH="$work/policy.json" \
  JARVIS_NODE_REGISTRY_URL="http://127.0.0.1:$NR" ARP_AUTH_CLIENT_ID=interop ARP_AUTH_CLIENT_SECRET=interop \
  ARP_AUTH_TOKEN_ENDPOINT="http://127.0.0.1:$STS/token" \
  "$py" -m jarvis_pdp --host 127.0.0.1 --port "$PDP_DENY"

# start_rc NAME PORT PDP_PORT SCHEMA: a coordinator from dist/ dispatching to the AE, asking the NR and PDP
# (SCHEMA is its schema when the coordinators run on PostgreSQL).
start_rc() {
  local store=()
  if [ -n "$database_url" ]; then store=(RC_DATABASE_URL="$database_url" RC_DATABASE_SCHEMA="$4"); fi
  start "$1" env LOG_LEVEL=info ${store[@]+"${store[@]}"} \
    RC_ATOMIC_EXECUTOR_URL="http://127.0.0.1:$AE" RC_NODE_REGISTRY_URL="http://127.0.0.1:$NR" \
    RC_PDP_URL="http://127.0.0.1:$3" RC_PUBLIC_URL="http://127.0.0.1:$2" RC_POLICY_DEFAULT=deny \
    RC_EXECUTE_TIMEOUT_MS=60000 RC_CALL_TIMEOUT_MS=5000 RC_DISPATCH_CONCURRENCY=8 \
    node "$root/dist/server.js" --host 127.0.0.1 --port "$2"
}
if [ -n "$database_url" ]; then echo "== coordinators on PostgreSQL (schemas interop_allow, interop_deny)"; fi
start_rc coordinator "$RC" "$PDP_ALLOW" interop_allow
start_rc coordinator-deny "$RC_DENY" "$PDP_DENY" interop_deny

wait_health sts "$STS"
wait_health atomic-executor "$AE"
wait_health node-registry "$NR"
wait_health pdp-allow "$PDP_ALLOW"
wait_health pdp-deny "$PDP_DENY"
wait_health coordinator "$RC"
wait_health coordinator-deny "$RC_DENY"

echo "== driver"
"$py" "$root/scripts/interop/driver.py" \
  --rc "http://127.0.0.1:$RC" --rc-deny "http://127.0.0.1:$RC_DENY" \
  --ae "http://127.0.0.1:$AE" --ae-log "$work/atomic-executor.log" \
  --nr "http://127.0.0.1:$NR" --pdp-deny "http://127.0.0.1:$PDP_DENY"
