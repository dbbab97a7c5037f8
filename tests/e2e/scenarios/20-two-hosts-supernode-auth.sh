#!/usr/bin/env bash
# Issue 20: supernode authentication across two "hosts" (separate folders and Docker
# networks, as scenario 12). Host A is `quickstart --role superlink --supernode-auth`: it
# makes no supernode key. Its bundle carries none either; host B's `quickstart
# --from-bundle` makes each supernode's pair there and writes the public halves to
# supernode-public-keys/. Started before admission, host B's supernodes are refused. Host
# A's `flowerbed supernodes admit` takes the public keys in: 1.13 reads them at start (the
# superlink is restarted, as admit says, and so are the supernodes, which gave up when
# refused), 1.35+ registers them (the rendered register-supernodes.sh; Docker restarts the
# refused supernodes, which exited). Both supernodes then connect over TLS and a `flwr run` completes.
# `check` on host A names the bundle whose keys are missing, and is clean after admitting.
# flwr: newest 1.13.*
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin two-hosts-auth
e2e_need_flowerbed

work="$(e2e_tmpdir)"
link="$work/host-a/link"
site="$work/host-b/site"
mkdir -p "$work/host-a" "$work/host-b"
project="$E2E_PREFIX"

host_ip="$(e2e_host_ip)"
port="$(e2e_free_port)"

e2e_step "host A: quickstart --role superlink --supernode-auth (no supernode key made here)"
"$FLOWERBED" quickstart "$link" --role superlink --public-address "$host_ip:$port" --supernode-auth \
    --flower-version "$FLWR_VERSION" --image-repo "$E2E_IMAGE_REPO" \
    --project-name "$project-a" >/dev/null
[ ! -e "$link/supernode-auth" ] || e2e_fail "host A made supernode keys"
# The Fleet port other hosts dial, moved to a free one (on 0.0.0.0); the flwr CLI's port
# too where the release keeps it apart (1.13: 9093 on loopback).
sed -i -E "s/0\.0\.0\.0:[0-9]+:([0-9]+)/0.0.0.0:$port:\1/" "$link/run.sh"
case "$FLWR_VERSION" in
    1.13.*)
        e2e_move_published_port "$link" "$(e2e_free_port)"
        control="$(sed -n 's/.*--publish 127\.0\.0\.1:\([0-9]*\):9093.*/\1/p' "$link/run.sh")"
        ;;
    *) control="$port" ;;
esac

e2e_step "host A: bundle supernode (no key of any kind); check names the bundle not admitted"
"$FLOWERBED" bundle supernode "$link" --out "$work/site.tar.gz" --supernodes 2 >/dev/null
if tar -xzOf "$work/site.tar.gz" | grep -E -- "-----BEGIN ([A-Z]+ )?PRIVATE KEY-----" >/dev/null; then
    e2e_fail "the bundle carries a private key"
fi
report="$("$FLOWERBED" check "$link" --json || true)"
echo "$report" | grep -F supernodes-not-admitted >/dev/null ||
    e2e_fail "check on host A did not name the bundle whose keys are missing: $report"

e2e_step "host A: start the superlink"
e2e_track_network "$project-a"
e2e_track_container "$project-a-superlink"
sh "$link/run.sh" >/dev/null

e2e_step "host B: quickstart --from-bundle makes the supernodes' keys here; start them"
"$FLOWERBED" quickstart --from-bundle "$work/site.tar.gz" "$site" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project-b" >/dev/null
for n in 1 2; do
    key="$site/supernode-auth/supernode-$n/auth.key"
    [ "$(stat -c %u:%a "$key")" = 49999:600 ] || e2e_fail "$key is $(stat -c %u:%a "$key")"
    cmp -s "$site/supernode-auth/supernode-$n/auth.pub" "$site/supernode-public-keys/supernode-$n.pub" ||
        e2e_fail "supernode-public-keys/supernode-$n.pub is not supernode-$n's public key"
done
if grep -rl "PRIVATE KEY" "$site/supernode-public-keys" >&2; then
    e2e_fail "the keys to send back hold a private key"
fi
rc=0
report="$("$FLOWERBED" check "$site" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "check on host B exited $rc: $report"
e2e_track_network "$project-b"
for n in 1 2; do e2e_track_container "$project-b-supernode-$n"; done
sh "$site/run.sh" >/dev/null

flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
case "$FLWR_VERSION" in
    1.13.*)
        app="$work/app"
        cp -r "$E2E_ROOT/tests/e2e/app-1.13" "$app"
        federation="$(sed -n 's/^\[tool\.flwr\.federations\.\([a-z0-9_-]*\)\]$/\1/p' "$link/flwr-federation.toml")"
        {
            printf '\n[tool.flwr.federations]\ndefault = "%s"\n\n' "$federation"
            grep -v '^#' "$link/flwr-federation.toml"
        } >>"$app/pyproject.toml"
        connection="$federation"
        ;;
    *)
        app="$E2E_ROOT/tests/e2e/app"
        {
            printf '[superlink]\ndefault = "%s"\n\n' "$project-a"
            cat "$link/flwr-config.toml"
        } >"$flwr_home/config.toml"
        sed -i -E "s/(address = \")[^\"]*\"/\1127.0.0.1:$control\"/" "$flwr_home/config.toml"
        connection="$project-a"
        ;;
esac

e2e_step "before admission the superlink refuses both supernodes"
sleep 20
case "$FLWR_VERSION" in
    1.13.*)
        if docker logs "$project-a-superlink" 2>&1 | grep -E 'Created node_id' >&2; then
            e2e_fail "the superlink created a node for an unadmitted supernode"
        fi
        docker logs "$project-b-supernode-1" 2>&1 | grep -F UNAUTHENTICATED >/dev/null ||
            e2e_fail "supernode-1 logged no UNAUTHENTICATED refusal"
        e2e_log "   supernode-1: UNAUTHENTICATED; no node created"
        ;;
    *)
        answer="$(e2e_flwr "$flwr_home" supernode list "$connection" --format json)"
        known="$(e2e_json 'len(d.get("nodes", []))' <<<"$answer")"
        [ "$known" -eq 0 ] || e2e_fail "the superlink knows $known nodes before registration: $answer"
        e2e_log "   no node known to the superlink"
        ;;
esac

e2e_step "host A: supernodes admit (idempotent); 1.13 restarts, 1.35+ registers"
"$FLOWERBED" supernodes admit "$link" "$site/supernode-public-keys" >/dev/null
again="$("$FLOWERBED" supernodes admit "$link" "$site/supernode-public-keys" --json)"
[ "$(e2e_json 'len(d["added"])' <<<"$again")" -eq 0 ] || e2e_fail "a second admit added keys: $again"
rc=0
report="$("$FLOWERBED" check "$link" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "check on host A after admit exited $rc: $report"
if echo "$report" | grep -E 'supernodes-not-admitted|supernode-key-unknown' >&2; then
    e2e_fail "check on host A still finds an admission problem"
fi
case "$FLWR_VERSION" in
    # 1.13 reads the keys at start; its supernodes, refused, gave up without exiting (the
    # container stays up, so Docker does not restart them): their operator restarts them.
    1.13.*) docker restart "$project-a-superlink" >/dev/null
        docker restart "$project-b-supernode-1" "$project-b-supernode-2" >/dev/null ;;
    *) PATH="$E2E_FLWR_VENV/bin:$PATH" FLWR_HOME="$flwr_home" sh "$link/register-supernodes.sh" >/dev/null ||
        e2e_fail "register-supernodes.sh failed" ;;
esac

e2e_step "both supernodes of host B connect; flwr run completes"
case "$FLWR_VERSION" in
    1.13.*) e2e_wait_log_count "$project-a-superlink" 'Created node_id=[0-9]+' 2 180 ;;
    *) e2e_wait_supernodes "$flwr_home" "$connection" 2 180 ;;
esac
e2e_flwr_run_completes "$flwr_home" "$app" "$connection" 2 300 >/dev/null

e2e_end
