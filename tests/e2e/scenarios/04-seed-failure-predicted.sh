#!/usr/bin/env bash
# The seed's failures, reproduced on a real engine, each predicted first by `flowerbed check`:
#  A. certificates from `flowerbed certs generate` as root, not handed to UID 49999: check
#     reports the unreadable key, and the SuperLink container exits with PermissionError;
#  B. the same folder handed to 49999 with `flowerbed own`: check is clean, a federated run
#     completes over TLS, and `check --live` of the running containers is clean;
#  C. a server certificate whose SAN lacks `superlink`: check reports the name, and the
#     SuperNodes never connect while the SuperLink itself runs.
# The deployment is a hand-written `docker run` script, as a user of Flower's docs writes it.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin seed-failure-predicted
e2e_need_flowerbed

work="$(e2e_tmpdir)"
port="$(e2e_free_port)"
network="$E2E_PREFIX-net"
superlink="$E2E_PREFIX-superlink"
supernodes=("$E2E_PREFIX-supernode-0" "$E2E_PREFIX-supernode-1")

# write_run_script FILE SUPERLINK_CERT_DIR SUPERNODE_CA_FILE
write_run_script() {
    cat >"$1" <<EOF
#!/bin/sh
set -e
docker network create $network
docker run -d --name $superlink --network $network --network-alias superlink \\
    -p 127.0.0.1:$port:8000 \\
    -v $2:/app/certificates:ro \\
    $(e2e_image superlink) \\
    --isolation subprocess --host 0.0.0.0 \\
    --ssl-ca-certfile certificates/ca.crt \\
    --ssl-certfile certificates/server.pem \\
    --ssl-keyfile certificates/server.key \\
    --disable-runtime-dependency-installation
docker run -d --name ${supernodes[0]} --network $network \\
    -v $3:/app/ca.crt:ro \\
    $(e2e_image supernode) \\
    --superlink superlink:8000 --root-certificates ca.crt \\
    --node-config "partition-id=0 num-partitions=2"
docker run -d --name ${supernodes[1]} --network $network \\
    -v $3:/app/ca.crt:ro \\
    $(e2e_image supernode) \\
    --superlink superlink:8000 --root-certificates ca.crt \\
    --node-config "partition-id=1 num-partitions=2"
EOF
}

start_deployment() {
    e2e_track_network "$network"
    for name in "$superlink" "${supernodes[@]}"; do e2e_track_container "$name"; done
    sh "$1" >/dev/null
}

stop_deployment() {
    docker rm -f "$superlink" "${supernodes[@]}" >/dev/null
    docker network rm "$network" >/dev/null
}

# check_expect SCRIPT EXIT [FINDING_ID]: run `flowerbed check --json`; assert its exit code
# and, when it has findings, that FINDING_ID is among them.
check_expect() {
    local script="$1" want_exit="$2" want_id="$3" rc=0 report
    report="$("$FLOWERBED" check --run-script "$script" --json)" || rc=$?
    [ "$rc" -eq "$want_exit" ] || e2e_fail "flowerbed check exited $rc, not $want_exit: $report"
    if [ "$want_exit" -ne 0 ]; then
        e2e_json '[f["id"] for f in d["findings"]]' <<<"$report" | grep "'$want_id'" >/dev/null ||
            e2e_fail "flowerbed check did not report '$want_id': $report"
        e2e_log "   check predicted it: $(e2e_json '"; ".join(f["id"] + ": " + f["message"] for f in d["findings"])' <<<"$report")"
    else
        e2e_log "   check is clean"
    fi
}

e2e_step "A. flowerbed certs generate as root; check predicts the unreadable key"
deploy="$work/deploy"
"$FLOWERBED" certs generate "$deploy" >/dev/null
script="$work/run.sh"
write_run_script "$script" "$deploy/superlink-certificates" "$deploy/supernode-certificates/ca.crt"
check_expect "$script" 1 not-readable

e2e_step "A. ... and the SuperLink container dies with PermissionError on the key"
start_deployment "$script"
started=$SECONDS
while [ "$(docker inspect -f '{{.State.Status}}' "$superlink")" = running ]; do
    [ $((SECONDS - started)) -lt 60 ] || e2e_fail "the SuperLink still runs with a key it cannot read"
    sleep 1
done
superlink_log="$(docker logs "$superlink" 2>&1)"
if ! grep -q "PermissionError.*server.key" <<<"$superlink_log"; then
    e2e_fail "the SuperLink exited, but not with PermissionError on server.key: $(tail -n 5 <<<"$superlink_log")"
fi
e2e_log "   $(grep -m1 -o "PermissionError.*" <<<"$superlink_log")"

e2e_step "A. ... and check --live on the dead container names the mount, the fix and the log"
rc=0
report="$("$FLOWERBED" check --live "$superlink" --json)" || rc=$?
[ "$rc" -eq 1 ] || e2e_fail "check --live of the dead SuperLink exited $rc, not 1: $report"
ids="$(e2e_json '" ".join(sorted(f["id"] for f in d["findings"]))' <<<"$report")"
for want in container-exited log-permission-denied not-readable; do
    case " $ids " in *" $want "*) ;; *) e2e_fail "check --live did not report $want: $report" ;; esac
done
fix="$(e2e_json '[f["fix"] for f in d["findings"] if f["id"] == "not-readable"][0]' <<<"$report")"
[ "$fix" = "sudo flowerbed own $deploy/superlink-certificates" ] || e2e_fail "unexpected fix: $fix"
text="$("$FLOWERBED" check --live "$superlink" --color never)" && e2e_fail "check --live (text) exited 0"
grep -q "fix: sudo flowerbed own $deploy/superlink-certificates" <<<"$text" \
    || e2e_fail "the text report lacks the fix: $text"
e2e_log "   check --live: $ids; fix: $fix"
stop_deployment

e2e_step "B. flowerbed own hands the key folder to 49999: check is clean"
"$FLOWERBED" own "$deploy/superlink-certificates" >/dev/null
owner="$(stat -c %u:%g "$deploy/superlink-certificates/server.key")"
[ "$owner" = 49999:49999 ] || e2e_fail "server.key is owned by $owner after flowerbed own"
check_expect "$script" 0 ""

e2e_step "B. ... and a federated run completes over TLS"
start_deployment "$script"
flwr_home="$(e2e_flwr_home "$work/flwr-home" e2e "127.0.0.1:$port" "$deploy/supernode-certificates/ca.crt")"
e2e_wait_supernodes "$flwr_home" e2e 2 90
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" e2e 2 300 >/dev/null
rc=0
report="$("$FLOWERBED" check --live "$superlink" "${supernodes[@]}" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live of the running deployment exited $rc: $report"
e2e_log "   check --live of the running deployment is clean"
stop_deployment
# Hand the folder back before it goes; that retires own's journal for it. (Releasing only
# the parent, $deploy, hands the files back too but leaves the journal behind.)
"$FLOWERBED" release "$deploy/superlink-certificates" >/dev/null
if "$FLOWERBED" journal list 2>/dev/null | grep -F "$deploy" >/dev/null; then
    e2e_fail "flowerbed release left own's journal for $deploy/superlink-certificates"
fi

e2e_step "C. a certificate without 'superlink' in its SAN: check predicts it"
narrow="$work/narrow-san"
e2e_openssl_certs "$narrow" "DNS:localhost,IP:127.0.0.1,IP:::1"
chown -R 49999:49999 "$narrow"
write_run_script "$script" "$narrow" "$narrow/ca.crt"
check_expect "$script" 1 name-not-covered

e2e_step "C. ... and the SuperNodes never connect, while the SuperLink runs and answers"
start_deployment "$script"
flwr_home="$(e2e_flwr_home "$work/flwr-home-narrow" e2e "127.0.0.1:$port" "$narrow/ca.crt")"
sleep 25
answer="$(e2e_flwr "$flwr_home" supernode list e2e --format json)"
[ "$(e2e_json 'd.get("success")' <<<"$answer")" = True ] ||
    e2e_fail "the SuperLink does not answer the CLI on 127.0.0.1 (which its SAN covers): $answer"
online="$(e2e_json 'sum(1 for n in d.get("nodes", []) if n.get("status") == "online")' <<<"$answer")"
[ "$online" -eq 0 ] || e2e_fail "$online SuperNodes connected although the SAN lacks 'superlink'"
e2e_assert_running "$superlink"
e2e_log "   0 SuperNodes online after 25s; the SuperLink runs and answers on 127.0.0.1"
stop_deployment

e2e_end
