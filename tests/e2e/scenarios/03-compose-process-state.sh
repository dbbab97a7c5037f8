#!/usr/bin/env bash
# Harness proof for Compose: a hand-written compose.yaml of the deployment flowerbed will
# render, in process isolation (one SuperExec for the ServerApp, one per SuperNode), with
# the SuperLink's state in a host folder. The SuperLink is healthchecked through its gRPC
# health service, so the SuperNodes start only once it serves. After a completed run the
# SuperLink is restarted, and the run must still be in its database.
# flwr: newest
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin compose-process-state

e2e_step "certificates and a state folder, owned by 49999"
work="$(e2e_tmpdir)"
certs="$work/certificates"
state="$work/state"
e2e_openssl_certs "$certs" "DNS:superlink,DNS:localhost,IP:127.0.0.1,IP:::1"
mkdir -p "$state"
# The state folder itself must be writable by 49999 (SQLite writes its journal beside the db).
chown -R 49999:49999 "$certs" "$state"

e2e_step "compose.yaml: superlink, superexec-serverapp, 2 x (supernode, superexec)"
port="$(e2e_free_port)"
compose="$work/compose.yaml"
superlink_image="$(e2e_image superlink)"
supernode_image="$(e2e_image supernode)"
superexec_image="$(e2e_image superexec)"
# A gRPC health probe with what the image already has (grpcio-health-checking ships with flwr).
health_probe='import grpc, sys; from grpc_health.v1 import health_pb2 as p, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel(sys.argv[1])).Check(p.HealthCheckRequest(), timeout=3).status; sys.exit(0 if s == p.HealthCheckResponse.SERVING else 1)'
{
    cat <<EOF
services:
  superlink:
    image: $superlink_image
    command:
      - --isolation=process
      - --host=0.0.0.0
      - --database=state/state.db
      - --ssl-ca-certfile=certificates/ca.crt
      - --ssl-certfile=certificates/server.pem
      - --ssl-keyfile=certificates/server.key
      - --disable-runtime-dependency-installation
      - --health-server-address=127.0.0.1:9098
    volumes:
      - $certs:/app/certificates:ro
      - $state:/app/state
    ports:
      - 127.0.0.1:$port:8000
    healthcheck:
      test: ["CMD", "python", "-c", "$health_probe", "127.0.0.1:9098"]
      interval: 2s
      timeout: 5s
      retries: 30
  superexec-serverapp:
    image: $superexec_image
    command: [--runtime-api-address=superlink:8000, --root-certificates=ca.crt]
    volumes:
      - $certs/ca.crt:/app/ca.crt:ro
    depends_on:
      superlink:
        condition: service_healthy
EOF
    for partition in 0 1; do
        cat <<EOF
  supernode-$partition:
    image: $supernode_image
    command:
      - --superlink=superlink:8000
      - --root-certificates=ca.crt
      - --isolation=process
      - --host=0.0.0.0
      - --node-config=partition-id=$partition num-partitions=2
    volumes:
      - $certs/ca.crt:/app/ca.crt:ro
    depends_on:
      superlink:
        condition: service_healthy
  superexec-clientapp-$partition:
    image: $superexec_image
    command: [--runtime-api-address=supernode-$partition:9094, --insecure]
    depends_on: [supernode-$partition]
EOF
    done
} >"$compose"
e2e_compose "$compose" config --quiet

e2e_step "docker-compose up -d (waits for the SuperLink's health)"
e2e_compose "$compose" up --detach --wait --wait-timeout 120 >/dev/null 2>&1 ||
    e2e_compose "$compose" up --detach

e2e_step "both SuperNodes connect over TLS"
flwr_home="$(e2e_flwr_home "$work/flwr-home" e2e "127.0.0.1:$port" "$certs/ca.crt")"
e2e_wait_supernodes "$flwr_home" e2e 2 90

e2e_step "flwr run completes 2 rounds through the SuperExec containers"
run_id="$(e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" e2e 2 300)"

e2e_step "the SuperLink's database is on the host, owned by 49999"
[ -s "$state/state.db" ] || e2e_fail "no state/state.db on the host after a run"
owner="$(stat -c %u:%g "$state/state.db")"
[ "$owner" = 49999:49999 ] || e2e_fail "state/state.db is owned by $owner, not 49999:49999"

e2e_step "restart the SuperLink: the completed run is still in its database"
e2e_compose "$compose" restart superlink >/dev/null 2>&1
started=$SECONDS
# `flwr ls` exits 0 with "success": false while the SuperLink is still coming up.
until answer="$(e2e_flwr "$flwr_home" ls e2e --run-id "$run_id" --format json 2>/dev/null)" &&
    [ "$(e2e_json 'd.get("success")' <<<"$answer")" = True ]; do
    [ $((SECONDS - started)) -lt 60 ] || e2e_fail "the SuperLink did not answer within 60s of its restart"
    sleep 2
done
status="$(e2e_json '" ".join(r["status"] for r in d.get("runs", []))' <<<"$answer")"
[ "$status" = finished:completed ] || e2e_fail "after the restart, run $run_id reads '$status' (flwr ls: $answer)"
e2e_log "   run $run_id is still finished:completed after the restart"

e2e_end
