#!/usr/bin/env bash
# Harness proof for the seed-era profile (Flower 1.13): the same hand-written `docker run`
# deployment with that release's ports (9091 ServerAppIo, 9092 Fleet, 9093 Exec for the
# CLI) and its app API. Connections live in the app's pyproject.toml, and the CLI cannot
# list SuperNodes, so their registration is read from the SuperLink's log.
# flwr: 1.13.*
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin docker-run-tls-seed

e2e_step "certificates (openssl; SAN superlink, localhost, 127.0.0.1, ::1), owned by 49999"
work="$(e2e_tmpdir)"
certs="$work/certificates"
e2e_openssl_certs "$certs" "DNS:superlink,DNS:localhost,IP:127.0.0.1,IP:::1"
chown -R 49999:49999 "$certs"

e2e_step "SuperLink and two SuperNodes (docker run, subprocess isolation, TLS)"
network="$(e2e_network net)"
port="$(e2e_free_port)"
superlink="$E2E_PREFIX-superlink"
e2e_container superlink --network "$network" --network-alias superlink \
    --publish "127.0.0.1:$port:9093" \
    --volume "$certs:/app/certificates:ro" \
    "$(e2e_image superlink)" \
    --isolation subprocess \
    --ssl-ca-certfile certificates/ca.crt \
    --ssl-certfile certificates/server.pem \
    --ssl-keyfile certificates/server.key
for partition in 0 1; do
    e2e_container "supernode-$partition" --network "$network" \
        --volume "$certs/ca.crt:/app/ca.crt:ro" \
        "$(e2e_image supernode)" \
        --superlink superlink:9092 --root-certificates ca.crt \
        --isolation subprocess \
        --node-config "partition-id=$partition num-partitions=2"
done

e2e_step "both SuperNodes register over TLS (SuperLink log)"
e2e_wait_log_count "$superlink" 'Created node_id=[0-9]+' 2 90

e2e_step "flwr run of the tiny 1.13 app completes 2 rounds"
app="$work/app"
e2e_app_with_federation "$E2E_ROOT/tests/e2e/app-1.13" "$app" e2e "127.0.0.1:$port" "$certs/ca.crt"
e2e_flwr_run_completes "$work/flwr-home" "$app" e2e 2 300 >/dev/null
for name in "$superlink" "$E2E_PREFIX-supernode-0" "$E2E_PREFIX-supernode-1"; do
    e2e_assert_running "$name"
done

e2e_end
