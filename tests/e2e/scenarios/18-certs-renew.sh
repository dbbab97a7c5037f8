#!/usr/bin/env bash
# Certificate renewal on a running deployment: `quickstart` (TLS, 2 SuperNodes, Compose),
# a run completes; `flowerbed certs renew` issues a new server certificate from the same
# CA (owner 49999 kept, every ca.crt byte for byte the same), the SuperLink alone is
# restarted and serves the new certificate; the SuperNodes, with their old ca.crt,
# reconnect and a second run completes.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin certs-renew
e2e_need_flowerbed

project="$E2E_PREFIX"
work="$(e2e_tmpdir)"
deploy="$work/deploy"

e2e_step "flowerbed quickstart (TLS, 2 SuperNodes, subprocess isolation)"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
port="$(e2e_free_port)"
sed -i "s/published: \"8000\"/published: \"$port\"/" "$deploy/compose.yaml"
sed -i "s/127\.0\.0\.1:8000\"/127.0.0.1:$port\"/" "$deploy/flwr-config.toml"
e2e_compose "$deploy/compose.yaml" up --detach >/dev/null 2>&1 || e2e_fail "docker-compose up failed"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project" 2 120
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300 >/dev/null

# The certificate the SuperLink serves, as a TLS client sees it.
served_fingerprint() {
    openssl s_client -connect "127.0.0.1:$port" -servername superlink </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//'
}
file_fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }

e2e_step "certs renew: a new certificate from the same CA, owner and mode kept"
certs="$deploy/superlink-certificates"
old_cert="$(file_fingerprint "$certs/server.pem")"
[ "$(served_fingerprint)" = "$old_cert" ] || e2e_fail "the SuperLink does not serve $certs/server.pem"
ca_sums_before="$(sha256sum "$deploy/supernode-certificates/ca.crt" "$certs/ca.crt")"
owners_before="$(stat -c '%n %u:%g %a' "$certs/server.pem" "$certs/server.key")"
"$FLOWERBED" certs renew "$deploy" >/dev/null
new_cert="$(file_fingerprint "$certs/server.pem")"
[ "$new_cert" != "$old_cert" ] || e2e_fail "certs renew left the server certificate as it was"
[ "$(sha256sum "$deploy/supernode-certificates/ca.crt" "$certs/ca.crt")" = "$ca_sums_before" ] ||
    e2e_fail "certs renew changed a ca.crt"
[ "$(stat -c '%n %u:%g %a' "$certs/server.pem" "$certs/server.key")" = "$owners_before" ] ||
    e2e_fail "owners or modes changed: $(stat -c '%n %u:%g %a' "$certs/server.pem" "$certs/server.key")"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check after the renewal exited $rc: $report"

e2e_step "restart the SuperLink only: it serves the new certificate, the SuperNodes reconnect"
e2e_compose "$deploy/compose.yaml" restart superlink >/dev/null 2>&1
started=$SECONDS
until [ "$(served_fingerprint)" = "$new_cert" ]; do
    [ $((SECONDS - started)) -lt 60 ] || e2e_fail "the restarted SuperLink does not serve the renewed certificate"
    sleep 1
done
e2e_log "   the SuperLink serves the renewed certificate"
e2e_wait_supernodes "$flwr_home" "$project" 2 120
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300 >/dev/null
for index in 1 2; do
    e2e_assert_running "$project-supernode-$index-1"
done

e2e_step "down; release; the folder can be deleted"
e2e_compose "$deploy/compose.yaml" down --volumes >/dev/null 2>&1
"$FLOWERBED" release "$deploy/superlink-certificates" >/dev/null
rm -rf "$deploy"

e2e_end
