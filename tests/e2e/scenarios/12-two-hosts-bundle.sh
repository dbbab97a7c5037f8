#!/usr/bin/env bash
# Two hosts on one machine: the superlink side and the supernode side are separate folders
# on separate Docker networks (standing for two hosts that share nothing but a route). The
# superlink side is `quickstart --role superlink --public-address HOST_IP:PORT`; the
# supernode side is made only from the bundle it hands out (`quickstart --from-bundle`):
# no key, no certificate but the CA. Both sides run process isolation with every link TLS
# (issue 21): each host makes its own runner links' secrets, and the supernode host issues
# its Runtime API certificates from a CA of its own that only its runners trust; none of
# it crosses hosts. The supernodes dial the public address through the host's published
# port and connect over TLS; a `flwr run` completes through the TLS runner links. A second bundle that
# dials an address of the same host that the server certificate lacks is flagged by `check`
# (exit 1) and, started anyway, its supernode never connects.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin two-hosts
e2e_need_flowerbed

work="$(e2e_tmpdir)"
link="$work/host-a/link"
site="$work/host-b/site"
mkdir -p "$work/host-a" "$work/host-b"
project="$E2E_PREFIX"

host_ip="$(e2e_host_ip)"
port="$(e2e_free_port)"

e2e_step "host A: quickstart --role superlink --public-address $host_ip:$port"
"$FLOWERBED" quickstart "$link" --role superlink --public-address "$host_ip:$port" \
    --flower-version "$FLWR_VERSION" --image-repo "$E2E_IMAGE_REPO" --isolation process \
    --project-name "$project-a" >/dev/null
openssl x509 -in "$link/superlink-certificates/server.pem" -noout -ext subjectAltName |
    grep -F "IP Address:$host_ip" >/dev/null || e2e_fail "server certificate lacks IP:$host_ip"
# The superlink publishes the release's Fleet port; move it to the free one in the rendered
# script (a port other tests may hold is not ours to take).
grep -E -- "-p +['\"]?0\.0\.0\.0:[0-9]+:[0-9]+" "$link/run.sh" >/dev/null ||
    grep -E -- "0\.0\.0\.0:[0-9]+:[0-9]+" "$link/run.sh" >/dev/null ||
    e2e_fail "run.sh publishes no port on 0.0.0.0 for a superlink deployment"
sed -i -E "s/0\.0\.0\.0:[0-9]+:([0-9]+)/0.0.0.0:$port:\1/" "$link/run.sh"
rc=0
report="$("$FLOWERBED" check "$link" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "check on host A exited $rc: $report"

e2e_step "host A: bundle supernode (CA certificate only)"
"$FLOWERBED" bundle supernode "$link" --out "$work/site.tar.gz" --supernodes 2 >/dev/null
if tar -xzOf "$work/site.tar.gz" | grep -E -- "-----BEGIN ([A-Z]+ )?PRIVATE KEY-----" >/dev/null; then
    e2e_fail "the bundle carries a private key"
fi
if tar -tzf "$work/site.tar.gz" | grep -E "superexec-auth|runtime-ca|supernode-runtime-certificates" >&2; then
    e2e_fail "the bundle carries runner-link material, which each host must make for itself"
fi

e2e_step "host A: start the superlink"
e2e_track_network "$project-a"
e2e_track_container "$project-a-superlink"
e2e_track_container "$project-a-superexec-serverapp"
sh "$link/run.sh" >/dev/null

e2e_step "host B: quickstart --from-bundle (hands over its own material); check; start"
"$FLOWERBED" quickstart --from-bundle "$work/site.tar.gz" "$site" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project-b" >/dev/null
for forbidden in ca/ca.key superlink-certificates; do
    [ ! -e "$site/$forbidden" ] || e2e_fail "host B has $forbidden: it must come from the bundle only"
done
grep -F -- "$host_ip:$port" "$site/run.sh" >/dev/null || e2e_fail "host B's run.sh does not dial $host_ip:$port"
for script in "$link/run.sh" "$site/run.sh"; do
    if grep -n -- '--insecure' "$script" >&2; then e2e_fail "$script leaves a link plain"; fi
done
# Host B's Runtime CA: its key stays with the operator (never mounted, never handed over);
# the supernodes' Runtime certificates chain to it and not to the superlink's CA.
[ "$(stat -c %a "$site/runtime-ca/ca.key")" = 600 ] || e2e_fail "runtime-ca/ca.key is not 0600"
[ "$(stat -c %u "$site/runtime-ca/ca.key")" = "$(id -u)" ] || e2e_fail "runtime-ca/ca.key was handed over"
cmp -s "$site/runtime-ca/ca.crt" "$site/runner-certificates/ca.crt" || e2e_fail "the runners trust another CA"
if cmp -s "$site/runtime-ca/ca.crt" "$site/supernode-certificates/ca.crt"; then
    e2e_fail "host B's Runtime CA is the superlink's CA"
fi
for n in 1 2; do
    cert="$site/supernode-runtime-certificates/supernode-$n/server.pem"
    openssl verify -CAfile "$site/runtime-ca/ca.crt" -verify_hostname "supernode-$n" "$cert" >/dev/null ||
        e2e_fail "supernode-$n's Runtime certificate does not verify against host B's Runtime CA"
    if openssl verify -CAfile "$site/supernode-certificates/ca.crt" "$cert" >/dev/null 2>&1; then
        e2e_fail "supernode-$n's Runtime certificate chains to the superlink's CA"
    fi
done
# One secret per link and per host: host A's ServerApp link shares none with host B's.
secret_a="$(cat "$link/superexec-auth/superlink/secret")"
for n in 1 2; do
    [ "$(cat "$site/superexec-auth/supernode-$n/secret")" != "$secret_a" ] ||
        e2e_fail "host B's supernode-$n link has host A's secret"
done
rc=0
report="$("$FLOWERBED" check "$site" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "check on host B exited $rc: $report"
# quickstart handed this host's private material to the container user (as root), and
# nothing else: the Runtime CA's key stays the operator's.
for n in 1 2; do
    key="$site/supernode-runtime-certificates/supernode-$n/server.key"
    [ "$(stat -c %u:%g:%a "$key")" = 49999:49999:600 ] || e2e_fail "$key is $(stat -c %u:%g:%a "$key")"
done
[ "$(stat -c %u "$site/runtime-ca/ca.key")" = "$(id -u)" ] || e2e_fail "runtime-ca/ca.key was handed over"
e2e_track_network "$project-b"
for n in 1 2; do
    e2e_track_container "$project-b-supernode-$n"
    e2e_track_container "$project-b-superexec-clientapp-$n"
done
sh "$site/run.sh" >/dev/null
# Two hosts: the sides share no Docker network.
for n in 1 2; do
    networks="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$project-b-supernode-$n")"
    case " $networks " in *" $project-a "*) e2e_fail "supernode-$n is on host A's network" ;; esac
done

e2e_step "both supernodes from host B connect over TLS; flwr run completes"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project-a"
    cat "$link/flwr-config.toml"
} >"$flwr_home/config.toml"
# The flwr CLI runs on host A and reaches the superlink through the same published port.
sed -i -E "s/(address = \")[^\"]*\"/\1127.0.0.1:$port\"/" "$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project-a" 2 120
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project-a" 2 300 >/dev/null

e2e_step "a bundle dialing an address the certificate lacks: check flags it"
# Another address of this host, as reachable as the right one, but not in the certificate:
# any other global IPv4 address of the host's own interfaces (host A's Docker network is up
# by now, so its bridge has one even when the default bridge reports no IPAM gateway).
wrong_ip="$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4 }' |
    grep -vxF "$host_ip" | sed -n 1p || true)"
[ -n "$wrong_ip" ] || e2e_fail "no second host address to dial (ip -4 addr lists only $host_ip)"
"$FLOWERBED" bundle supernode "$link" --out "$work/wrong.tar.gz" --supernodes 1 \
    --superlink-address "$wrong_ip:$port" >/dev/null 2>&1
wrong="$work/host-b/wrong"
"$FLOWERBED" quickstart --from-bundle "$work/wrong.tar.gz" "$wrong" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project-c" >/dev/null
rc=0
report="$("$FLOWERBED" check "$wrong" --json)" || rc=$?
[ "$rc" -eq 1 ] || e2e_fail "check on the wrong bundle exited $rc (want 1): $report"
echo "$report" | grep -F superlink-address-not-covered >/dev/null ||
    e2e_fail "check did not name superlink-address-not-covered: $report"
e2e_log "   check predicted it: superlink-address-not-covered"

e2e_step "... and started anyway, its supernode never connects"
e2e_track_network "$project-c"
e2e_track_container "$project-c-supernode-1"
e2e_track_container "$project-c-superexec-clientapp-1"
sh "$wrong/run.sh" >/dev/null
sleep 25
answer="$(e2e_flwr "$flwr_home" supernode list "$project-a" --format json)"
online="$(e2e_json 'sum(1 for n in d.get("nodes", []) if n.get("status") == "online")' <<<"$answer")"
[ "$online" -eq 2 ] || e2e_fail "$online SuperNodes online; want the 2 from the right bundle only"
# The supernode's own words: the name check of the TLS handshake failed.
refused="$(docker logs "$project-c-supernode-1" 2>&1 | grep -m1 -o "certificate verify failed: IP address mismatch[^(]*" || true)"
[ -n "$refused" ] || e2e_fail "the supernode dialing $wrong_ip logged no certificate verify failure"
e2e_log "   still 2 SuperNodes online after 25s; the one dialing $wrong_ip: $refused"

e2e_end
