#!/usr/bin/env bash
# Issue scenario 2 with flowerbed's own files: `quickstart --isolation process --state`,
# `check`, the rendered compose.yaml up with Compose v2 (a SuperExec container per
# SuperNode and one for the ServerApps), a run over TLS through the rendered connection,
# then a SuperLink restart keeps the run in its SQLite state.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-compose-process-state
e2e_need_flowerbed

project="$E2E_PREFIX"
work="$(e2e_tmpdir)"
deploy="$work/deploy"

e2e_step "flowerbed quickstart --isolation process --state (TLS, 2 SuperNodes)"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --isolation process --state \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
for folder in superlink-certificates state; do
    owner="$(stat -c %u:%g "$deploy/$folder")"
    [ "$owner" = 49999:49999 ] || e2e_fail "quickstart as root left $folder owned by $owner"
done
# quickstart publishes the fixed port 8000; move it to a free one (no --publish-port yet).
port="$(e2e_free_port)"
sed -i "s/published: \"8000\"/published: \"$port\"/" "$deploy/compose.yaml"
sed -i "s/127\.0\.0\.1:8000\"/127.0.0.1:$port\"/" "$deploy/flwr-config.toml"
grep -F "published: \"$port\"" "$deploy/compose.yaml" >/dev/null || e2e_fail "compose.yaml publishes no port 8000"

e2e_step "check is clean; Compose accepts the file and starts it"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
e2e_compose "$deploy/compose.yaml" config --quiet
e2e_compose "$deploy/compose.yaml" up --detach >/dev/null 2>&1 || e2e_fail "docker-compose up failed"
runners="$(docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Image}}' | grep -c superexec || true)"
[ "$runners" -eq 3 ] || e2e_fail "expected 3 SuperExec containers (1 ServerApp, 2 ClientApp), found $runners"

e2e_step "both SuperNodes connect; flwr run completes over TLS"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project" 2 120
run_id="$(e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300)"
[ -s "$deploy/state/state.db" ] || e2e_fail "no SQLite database in the state folder"

e2e_step "restart the SuperLink: the completed run is still in its database"
e2e_compose "$deploy/compose.yaml" restart superlink >/dev/null 2>&1
started=$SECONDS
until answer="$(e2e_flwr "$flwr_home" ls "$project" --run-id "$run_id" --format json 2>/dev/null)" &&
    [ "$(e2e_json 'd.get("success")' <<<"$answer" 2>/dev/null)" = True ]; do
    [ $((SECONDS - started)) -lt 90 ] || e2e_fail "the SuperLink did not answer within 90s of its restart"
    sleep 2
done
status="$(e2e_json '" ".join(r["status"] for r in d["runs"])' <<<"$answer")"
[ "$status" = finished:completed ] || e2e_fail "after the restart, run $run_id reads '$status'"
e2e_log "   run $run_id is still finished:completed after the restart"

e2e_step "down; release; the folder can be deleted"
e2e_compose "$deploy/compose.yaml" down --volumes >/dev/null 2>&1
"$FLOWERBED" release "$deploy/superlink-certificates" >/dev/null
"$FLOWERBED" release "$deploy/state" >/dev/null
rm -rf "$deploy"

e2e_end
