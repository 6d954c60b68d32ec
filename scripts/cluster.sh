#!/usr/bin/env bash
# Starts a whole local Switchboard cluster in the foreground; Ctrl-C stops it.
#
#   Redis (its own, in .cluster/, unless REDIS_URL is given), 3 gateways behind HAProxy with
#   sticky sessions, the dispatcher, the admin API with its operator console (/console) and the
#   demo page. Logs go to .cluster/logs/.
#
# On a fresh Debian machine with Node.js, run as root it installs redis-server and haproxy;
# otherwise it says what to install. Ports can be changed through the environment:
#
#   LB_PORT (8000)  LB_STATS_PORT (8404)  GATEWAYS (3, at most 3)
#   GATEWAY_PORT_BASE (3001)  GATEWAY_OPS_PORT_BASE (9111)     gateway i uses base + i - 1
#   DISPATCHER_OPS_PORT (9101)  ADMIN_PORT (8080)  DEMO_PORT (8090)  REDIS_PORT (a free one)
#   READY_TIMEOUT_SEC (60)  REDIS_URL, KEY_PREFIX (sb), LOG_LEVEL (info)
#   JWT_SECRET, ADMIN_API_KEY: generated for the session unless given
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATE=.cluster
LOGS=$STATE/logs
LB_PORT=${LB_PORT:-8000}
LB_STATS_PORT=${LB_STATS_PORT:-8404}
GATEWAYS=${GATEWAYS:-3}
GATEWAY_PORT_BASE=${GATEWAY_PORT_BASE:-3001}
GATEWAY_OPS_PORT_BASE=${GATEWAY_OPS_PORT_BASE:-9111}
DISPATCHER_OPS_PORT=${DISPATCHER_OPS_PORT:-9101}
ADMIN_PORT=${ADMIN_PORT:-8080}
DEMO_PORT=${DEMO_PORT:-8090}
READY_TIMEOUT_SEC=${READY_TIMEOUT_SEC:-60}
KEY_PREFIX=${KEY_PREFIX:-sb}
LOG_LEVEL=${LOG_LEVEL:-info}

say() { printf '%s\n' "$*"; }
die() {
  printf 'cluster: %s\n' "$*" >&2
  exit 1
}

[[ $GATEWAYS =~ ^[1-3]$ ]] || die "GATEWAYS must be 1, 2 or 3 (the load balancer has 3 slots)"

# ---------- prerequisites ----------

command -v node >/dev/null || die "Node.js 20.19 or later is required"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  die "Node.js 20.19 or later is required (found $(node --version))"

find_haproxy() {
  local dir
  command -v haproxy && return 0
  # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
  for dir in /usr/sbin /usr/local/sbin /sbin; do
    [[ -x $dir/haproxy ]] && { echo "$dir/haproxy"; return 0; }
  done
  return 1
}

missing=()
if [[ -z ${REDIS_URL:-} ]] && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
find_haproxy >/dev/null || missing+=(haproxy)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "Installing ${missing[*]}…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing ${missing[*]}: install with 'sudo apt-get install ${missing[*]}', or run this script as root"
  fi
fi
HAPROXY=$(find_haproxy) || die "haproxy is still missing"
haproxy_version=$("$HAPROXY" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
node -e 'const [a, b] = process.argv[1].split(".").map(Number); process.exit(a > 2 || (a === 2 && b >= 4) ? 0 : 1)' "${haproxy_version:-0.0}" ||
  die "HAProxy 2.4 or later is required by deploy/haproxy/haproxy.cfg (found ${haproxy_version:-unknown})"

mkdir -p "$LOGS"

if [[ ! -d node_modules ]]; then
  say "Installing dependencies (npm ci)…"
  npm ci --no-audit --no-fund
fi

say "Building (log: $LOGS/build.log)…"
if ! npm run build >"$LOGS/build.log" 2>&1; then
  tail -n 30 "$LOGS/build.log" >&2
  die "the build failed; full log in $LOGS/build.log"
fi
for service in gateway dispatcher admin; do
  [[ -f services/$service/dist/main.js ]] ||
    die "services/$service/dist/main.js does not exist after the build: the $service service has no src/main.ts yet (see $LOGS/build.log)"
done
[[ -f node_modules/socket.io-client/dist/socket.io.min.js ]] ||
  die "node_modules/socket.io-client/dist/socket.io.min.js is missing: run npm ci"

# ---------- ports ----------

port_free() {
  node -e 'const s = require("node:net").createServer(); s.once("error", () => process.exit(1)); s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close())' "$1"
}
free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { process.stdout.write(String(s.address().port)); s.close(); })'
}

declare -A wanted=(
  [LB_PORT]=$LB_PORT [LB_STATS_PORT]=$LB_STATS_PORT [DISPATCHER_OPS_PORT]=$DISPATCHER_OPS_PORT
  [ADMIN_PORT]=$ADMIN_PORT [DEMO_PORT]=$DEMO_PORT
)
for ((i = 1; i <= GATEWAYS; i++)); do
  wanted[GATEWAY_PORT_BASE+$((i - 1))]=$((GATEWAY_PORT_BASE + i - 1))
  wanted[GATEWAY_OPS_PORT_BASE+$((i - 1))]=$((GATEWAY_OPS_PORT_BASE + i - 1))
done
for name in "${!wanted[@]}"; do
  port=${wanted[$name]}
  [[ $port =~ ^[0-9]+$ ]] || die "$name is not a port number: $port"
  port_free "$port" || die "port $port is in use; stop what holds it or choose another with ${name%%+*}"
done

# ---------- processes ----------

names=()
pids=()

start() {
  local name=$1
  shift
  : >"$LOGS/$name.log"
  # Own session: Ctrl-C reaches only this script, which stops everything in order.
  if command -v setsid >/dev/null; then
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  else
    "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  fi
  names+=("$name")
  pids+=("$!")
}

stop_pids() {
  local pid deadline
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Gateways drain within SHUTDOWN_TIMEOUT_MS (10 s by default).
  deadline=$((SECONDS + 15))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

stopped=0
cleanup() {
  ((stopped)) && return
  stopped=1
  ((${#pids[@]})) || return 0
  say ""
  say "Stopping the cluster…"
  local i others=() redis=()
  for i in "${!pids[@]}"; do
    if [[ ${names[$i]} == redis ]]; then redis+=("${pids[$i]}"); else others+=("${pids[$i]}"); fi
  done
  # Redis last, so the services close their connections cleanly.
  ((${#others[@]})) && stop_pids "${others[@]}"
  ((${#redis[@]})) && stop_pids "${redis[@]}"
  say "Stopped. Logs are in $LOGS/."
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP
trap cleanup EXIT

checks=()

if [[ -z ${REDIS_URL:-} ]]; then
  REDIS_PORT=${REDIS_PORT:-$(free_port)}
  port_free "$REDIS_PORT" || die "port $REDIS_PORT is in use; choose another with REDIS_PORT"
  # A fresh, in-memory Redis per run: no presence or sockets left over from the last one.
  rm -rf "$STATE/redis"
  mkdir -p "$STATE/redis"
  start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE/redis" \
    --save "" --appendonly no --protected-mode yes --daemonize no \
    --maxmemory 256mb --maxmemory-policy noeviction
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
  checks+=(redis "${pids[-1]}" "$REDIS_URL")
  redis_note="(started by this script, data not kept)"
else
  redis_note="(from REDIS_URL)"
fi

secret_note=""
if [[ -z ${JWT_SECRET:-} ]]; then
  JWT_SECRET=$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))')
  secret_note="generated for this session"
fi
if [[ -z ${ADMIN_API_KEY:-} ]]; then
  ADMIN_API_KEY=dev-$(node -e 'process.stdout.write(require("node:crypto").randomBytes(16).toString("hex"))')
fi

common=(REDIS_URL="$REDIS_URL" KEY_PREFIX="$KEY_PREFIX" LOG_LEVEL="$LOG_LEVEL" HOST=127.0.0.1)
cors="http://127.0.0.1:$DEMO_PORT,http://localhost:$DEMO_PORT"
lb_env=(LB_BIND="127.0.0.1:$LB_PORT" LB_STATS_BIND="127.0.0.1:$LB_STATS_PORT" GATEWAY_1= GATEWAY_2= GATEWAY_3=)

for ((i = 1; i <= GATEWAYS; i++)); do
  port=$((GATEWAY_PORT_BASE + i - 1))
  ops=$((GATEWAY_OPS_PORT_BASE + i - 1))
  start "gw-$i" env "${common[@]}" PORT="$port" OPS_PORT="$ops" POD_ID="gw-$i" JWT_SECRET="$JWT_SECRET" \
    CORS_ORIGINS="$cors" TRUST_PROXY=true node services/gateway/dist/main.js
  checks+=("gw-$i" "${pids[-1]}" "http://127.0.0.1:$ops/readyz")
  lb_env+=("GATEWAY_$i=127.0.0.1:$port")
done

start dispatcher env "${common[@]}" OPS_PORT="$DISPATCHER_OPS_PORT" POD_ID=dispatcher-1 \
  node services/dispatcher/dist/main.js
checks+=(dispatcher "${pids[-1]}" "http://127.0.0.1:$DISPATCHER_OPS_PORT/readyz")

start admin env "${common[@]}" PORT="$ADMIN_PORT" POD_ID=admin-1 JWT_SECRET="$JWT_SECRET" \
  ADMIN_API_KEYS="$ADMIN_API_KEY" node services/admin/dist/main.js
checks+=(admin "${pids[-1]}" "http://127.0.0.1:$ADMIN_PORT/readyz")

start haproxy env "${lb_env[@]}" "$HAPROXY" -db -f deploy/haproxy/haproxy.cfg
# Through the load balancer to a gateway's own /readyz: the whole path works.
checks+=(haproxy "${pids[-1]}" "http://127.0.0.1:$LB_PORT/readyz")

# The demo's "send me a notification" goes through the admin API with the session's admin key,
# from the demo server: the key never reaches the browser.
start demo env DEMO_HOST=127.0.0.1 DEMO_PORT="$DEMO_PORT" DEMO_LB_PORT="$LB_PORT" DEMO_MINT_TOKENS=true \
  JWT_SECRET="$JWT_SECRET" DEMO_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT" DEMO_ADMIN_API_KEY="$ADMIN_API_KEY" \
  node scripts/demo-server.mjs
checks+=(demo "${pids[-1]}" "http://127.0.0.1:$DEMO_PORT/healthz")

say "Waiting for $((${#checks[@]} / 3)) services (up to ${READY_TIMEOUT_SEC} s)…"
node scripts/wait-ready.mjs --timeout "$READY_TIMEOUT_SEC" --logs "$LOGS" "${checks[@]}" ||
  die "the cluster did not start; see $LOGS/"

gateway_urls=""
for ((i = 1; i <= GATEWAYS; i++)); do
  gateway_urls+=" http://127.0.0.1:$((GATEWAY_PORT_BASE + i - 1)) (ops :$((GATEWAY_OPS_PORT_BASE + i - 1)))"
done

cat <<EOF

Switchboard is running.

  Demo page       http://127.0.0.1:$DEMO_PORT
  Load balancer   http://127.0.0.1:$LB_PORT          Socket.IO, sticky cookie SBSRV
  HAProxy stats   http://127.0.0.1:$LB_STATS_PORT/stats
  Gateways       $gateway_urls
  Dispatcher      http://127.0.0.1:$DISPATCHER_OPS_PORT/metrics
  Console         http://127.0.0.1:$ADMIN_PORT/console   sign in with ADMIN_API_KEY below
  Admin API       http://127.0.0.1:$ADMIN_PORT/docs
  Redis           $REDIS_URL $redis_note
  Logs            $LOGS/

Development credentials for this session only (shown once, not written to disk):
  JWT_SECRET=$JWT_SECRET${secret_note:+   ($secret_note)}
  ADMIN_API_KEY=$ADMIN_API_KEY

  curl -H "Authorization: Bearer $ADMIN_API_KEY" http://127.0.0.1:$ADMIN_PORT/v1/stats

Press Ctrl-C to stop.
EOF

# Runs until Ctrl-C. A service that exits later is reported and the rest keeps running, so a
# gateway can be stopped on purpose to watch its clients move to the others.
declare -A reported=()
while :; do
  wait -n 2>/dev/null || true
  alive=0
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      alive=$((alive + 1))
    elif [[ -z ${reported[$i]:-} ]]; then
      reported[$i]=1
      printf 'cluster: %s exited; the rest keeps running (log: %s). Ctrl-C stops everything.\n' \
        "${names[$i]}" "$LOGS/${names[$i]}.log" >&2
    fi
  done
  ((alive)) || die "every service has exited"
done
