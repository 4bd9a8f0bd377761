#!/usr/bin/env bash
# make demo: the whole product on one machine. Starts influxd 1.8.10 (bin/),
# uses the MQTT broker on 127.0.0.1:1883 when one answers there or else
# starts a Mosquitto, runs `forewarn serve` and `forewarn simulate` with
# examples/forewarn.yaml, prints the URLs and the admin token, reports
# tickets as they open, and on Ctrl-C stops everything it started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/.demo
rm -rf "$demo" && mkdir -p "$demo"
pids=()
# Children run in their own sessions (setsid): a Ctrl-C reaches only this
# script, which then stops them one by one, newest first.

cleanup() {
	trap - INT TERM EXIT
	echo
	echo "stopping what the demo started..."
	# Newest first, each waited for: serve drains its spool to InfluxDB
	# before influxd goes away.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	echo "demo stopped; logs are in .demo/"
}
trap cleanup INT TERM EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p=$1
	while listening "$p"; do p=$((p + 1)); done
	echo "$p"
}
wait_http() { # url seconds
	for _ in $(seq $(($2 * 10))); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	return 1
}

# InfluxDB 1.8.10 with Flux and the v2 compatibility API.
influx_port=$(free_port 8086)
rpc_port=$(free_port $((influx_port + 2)))
mkdir -p "$demo/influxdb"
cat >"$demo/influxdb.toml" <<TOML
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"
[meta]
  dir = "$demo/influxdb/meta"
[data]
  dir = "$demo/influxdb/data"
  wal-dir = "$demo/influxdb/wal"
[http]
  enabled = true
  bind-address = "127.0.0.1:$influx_port"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[logging]
  level = "warn"
TOML
setsid "$root/bin/influxd" run -config "$demo/influxdb.toml" >"$demo/influxd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$influx_port/health" 60
curl -fsS -XPOST "http://127.0.0.1:$influx_port/query" --data-urlencode 'q=CREATE DATABASE "forewarn"' >/dev/null

# MQTT broker: reuse one on 1883, else start Mosquitto there.
if listening 1883; then
	echo "using the MQTT broker already listening on 127.0.0.1:1883"
else
	mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
	cat >"$demo/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence true
persistence_location $demo/
log_dest file $demo/mosquitto.log
CONF
	setsid "$mosquitto_bin" -c "$demo/mosquitto.conf" >>"$demo/mosquitto.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do listening 1883 && break; sleep 0.1; done
	echo "started Mosquitto on 127.0.0.1:1883"
fi

http_port=$(free_port 8080)
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FOREWARN_INFLUX_URL="http://127.0.0.1:$influx_port"
export FOREWARN_HTTP_ADDR="127.0.0.1:$http_port"
export FOREWARN_HTTP_ADMIN_TOKEN="$token"
export FOREWARN_STORE_DSN="sqlite:$demo/forewarn.db"
export FOREWARN_SPOOL_DIR="$demo/spool"
export FOREWARN_MQTT_CLIENT_ID="forewarn-demo-$$"

setsid "$root/bin/forewarn" serve --config examples/forewarn.yaml >"$demo/serve.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$http_port/readyz" 30

setsid "$root/bin/forewarn" simulate --config examples/forewarn.yaml --devices 10 --faulty 0.2 \
	--kinds heatpump --scenarios overheating --fault-after 6 \
	--interval 2s --duration 24h --seed "$RANDOM" >"$demo/simulate.log" 2>&1 &
pids+=($!)

api="http://127.0.0.1:$http_port"
cat <<MSG

Forewarn demo is running.
  console      $api/console/   (sign in with the admin token below)
  API          $api/api/v1/tickets   (Authorization: Bearer $token)
  health       $api/healthz  $api/readyz
  metrics      $api/metrics
  InfluxDB     http://127.0.0.1:$influx_port  (bucket forewarn/autogen)
  admin token  $token
  try          curl -H 'Authorization: Bearer $token' '$api/api/v1/tickets?status=open'
  logs         .demo/serve.log .demo/simulate.log

10 heat pumps publish every 2 s; 2 of them overheat after ~12 s and a ticket opens
once supply_temp_c has stayed above 60 for 1 minute of event time. Ctrl-C stops it all.

MSG

seen=""
started=$(date +%s)
while kill -0 "${pids[-1]}" 2>/dev/null; do
	sleep 2
	ids=$(curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/tickets?status=open" 2>/dev/null |
		grep -o '"id":[0-9]*,"device_id":"[^"]*"' || true)
	while read -r line; do
		[ -z "$line" ] && continue
		case "$seen" in *"|$line|"*) continue ;; esac
		seen="$seen|$line|"
		echo "$(date +%T) ticket opened after $(($(date +%s) - started))s: $line"
	done <<<"$ids"
done
