#!/usr/bin/env bash
# As a new user would: `flowerbed quickstart` with TLS (as root it also hands the SuperLink's
# certificates to 49999), start with the rendered run.sh, `flwr run` the tiny app through
# the rendered flwr connection, `flowerbed check --live` is clean, stop with stop.sh,
# `flowerbed release` the folder to a non-root user, who deletes it without sudo.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-run-sh
e2e_need_flowerbed

user=flowerbed-e2e
project="$E2E_PREFIX"
e2e_user "$user"
work="$(e2e_tmpdir)"
chown "$user:" "$work"
deploy="$work/deploy"

e2e_step "flowerbed quickstart (TLS, subprocess, 2 SuperNodes, images $E2E_IMAGE_REPO)"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
for file in run.sh stop.sh compose.yaml flwr-config.toml; do
    [ -s "$deploy/$file" ] || e2e_fail "quickstart wrote no $file"
done
owner="$(stat -c %u:%g "$deploy/superlink-certificates/server.key")"
[ "$owner" = 49999:49999 ] || e2e_fail "quickstart as root left server.key owned by $owner"
# quickstart publishes the fixed port 8000; other tests on this machine may hold it, so the
# harness moves it to a free one in the rendered files (no --publish-port option yet).
port="$(e2e_free_port)"
sed -i "s/127\.0\.0\.1:8000:8000/127.0.0.1:$port:8000/" "$deploy/run.sh"
sed -i "s/127\.0\.0\.1:8000\"/127.0.0.1:$port\"/" "$deploy/flwr-config.toml"
grep -F "127.0.0.1:$port:8000" "$deploy/run.sh" >/dev/null || e2e_fail "run.sh publishes no 127.0.0.1:8000"

e2e_step "check predicts a clean start; sh run.sh"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
e2e_track_network "$project"
for service in superlink supernode-1 supernode-2; do e2e_track_container "$project-$service"; done
sh "$deploy/run.sh" >/dev/null

e2e_step "the rendered flwr connection reaches the SuperLink; both SuperNodes connect"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project" 2 90

e2e_step "flwr run completes 2 rounds over TLS; check --live is clean"
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300 >/dev/null
rc=0
report="$("$FLOWERBED" check --live "$project-superlink" "$project-supernode-1" "$project-supernode-2" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live exited $rc: $report"
e2e_log "   check --live is clean"

e2e_step "sh stop.sh; release to $user, who deletes the folder without sudo"
sh "$deploy/stop.sh" >/dev/null 2>&1
for service in superlink supernode-1 supernode-2; do
    ! docker inspect "$project-$service" >/dev/null 2>&1 || e2e_fail "stop.sh left $project-$service"
done
if e2e_as "$user" rm -rf "$deploy" 2>/dev/null; then
    e2e_fail "$user deleted the deployment before release (the key folder is 49999's)"
fi
"$FLOWERBED" release --to "$user" "$deploy/superlink-certificates" >/dev/null
"$FLOWERBED" release --to "$user" "$deploy" >/dev/null
e2e_as "$user" rm -rf "$deploy" || e2e_fail "$user could not delete the released deployment"
[ ! -e "$deploy" ] || e2e_fail "$deploy still exists"
if "$FLOWERBED" journal list 2>/dev/null | grep -F "$deploy" >/dev/null; then
    e2e_fail "own's journal for $deploy outlived release"
fi
e2e_log "   released to $user and deleted without sudo; no journal left"

e2e_end
