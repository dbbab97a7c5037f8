#!/usr/bin/env bash
# Harness proof: the deployment flowerbed will render, written by hand with plain
# `docker run`. A SuperLink (subprocess isolation, TLS) and two SuperNodes on a user-defined
# bridge network; the certificates are handed to UID 49999 first, as `flowerbed own` will do.
# The host's flwr CLI runs the tiny app over the published port and the run must complete.
# flwr: newest
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin docker-run-tls

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
    --publish "127.0.0.1:$port:8000" \
    --volume "$certs:/app/certificates:ro" \
    "$(e2e_image superlink)" \
    --isolation subprocess --host 0.0.0.0 \
    --ssl-ca-certfile certificates/ca.crt \
    --ssl-certfile certificates/server.pem \
    --ssl-keyfile certificates/server.key \
    --disable-runtime-dependency-installation
for partition in 0 1; do
    e2e_container "supernode-$partition" --network "$network" \
        --volume "$certs/ca.crt:/app/ca.crt:ro" \
        "$(e2e_image supernode)" \
        --superlink superlink:8000 --root-certificates ca.crt \
        --isolation subprocess \
        --node-config "partition-id=$partition num-partitions=2"
done

e2e_step "both SuperNodes connect over TLS"
flwr_home="$(e2e_flwr_home "$work/flwr-home" e2e "127.0.0.1:$port" "$certs/ca.crt")"
e2e_wait_supernodes "$flwr_home" e2e 2 90
for name in "$superlink" "$E2E_PREFIX-supernode-0" "$E2E_PREFIX-supernode-1"; do
    # Subprocess isolation: each component starts its SuperExec as its own child.
    e2e_has_superexec_child "$name" ||
        e2e_fail "$name has no flower-superexec child in subprocess isolation"
done
e2e_log "   each container runs its own flower-superexec child"

e2e_step "flwr run of the tiny app completes 2 rounds"
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" e2e 2 300 >/dev/null
for name in "$superlink" "$E2E_PREFIX-supernode-0" "$E2E_PREFIX-supernode-1"; do
    e2e_assert_running "$name"
done

e2e_end
