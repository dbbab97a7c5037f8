#!/usr/bin/env bash
# Mixed isolation with plain `docker run`: the SuperLink runs its ServerApp in subprocess
# isolation, the SuperNodes in process isolation, each with a SuperExec container for its
# ClientApps (plain HTTP to the SuperNode's Runtime API on the bridge network).
# flwr: newest
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin mixed-isolation

e2e_step "certificates (openssl), owned by 49999"
work="$(e2e_tmpdir)"
certs="$work/certificates"
e2e_openssl_certs "$certs" "DNS:superlink,DNS:localhost,IP:127.0.0.1,IP:::1"
chown -R 49999:49999 "$certs"

e2e_step "SuperLink (subprocess), 2 x SuperNode (process) + SuperExec"
network="$(e2e_network net)"
port="$(e2e_free_port)"
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
        --network-alias "supernode-$partition" \
        --volume "$certs/ca.crt:/app/ca.crt:ro" \
        "$(e2e_image supernode)" \
        --superlink superlink:8000 --root-certificates ca.crt \
        --isolation process --host 0.0.0.0 \
        --node-config "partition-id=$partition num-partitions=2"
    e2e_container "superexec-$partition" --network "$network" \
        "$(e2e_image superexec)" \
        --runtime-api-address "supernode-$partition:9094" --insecure
done

e2e_step "both SuperNodes connect over TLS"
flwr_home="$(e2e_flwr_home "$work/flwr-home" e2e "127.0.0.1:$port" "$certs/ca.crt")"
e2e_wait_supernodes "$flwr_home" e2e 2 90
e2e_has_superexec_child "$E2E_PREFIX-superlink" ||
    e2e_fail "the SuperLink has no flower-superexec child in subprocess isolation"
# Process isolation: the ClientApps run in the SuperExec containers, not in the SuperNodes.
for partition in 0 1; do
    processes="$(docker top "$E2E_PREFIX-supernode-$partition" -o pid,args)"
    ! grep -q 'flower-superexec' <<<"$processes" ||
        e2e_fail "supernode-$partition spawned its own SuperExec although its isolation is process"
done
e2e_log "   a SuperExec child in the SuperLink only, none in the SuperNodes"

e2e_step "flwr run completes 2 rounds (ClientApps in the SuperExec containers)"
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" e2e 2 300 >/dev/null
for suffix in superlink supernode-0 supernode-1 superexec-0 superexec-1; do
    e2e_assert_running "$E2E_PREFIX-$suffix"
done
e2e_end
