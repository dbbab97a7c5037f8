#!/usr/bin/env bash
# Issue scenario 3 with flowerbed's own files: `quickstart --superlink-isolation subprocess
# --supernode-isolation process` — the SuperLink runs its ServerApps itself, each SuperNode
# has a SuperExec container for its ClientApps — started from the rendered run.sh; a run
# completes over TLS and `check --live` is clean.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-mixed-isolation
e2e_need_flowerbed

project="$E2E_PREFIX"
work="$(e2e_tmpdir)"
deploy="$work/deploy"

e2e_step "flowerbed quickstart --superlink-isolation subprocess --supernode-isolation process"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" \
    --superlink-isolation subprocess --supernode-isolation process \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
port="$(e2e_free_port)"
sed -i "s/127\.0\.0\.1:8000:8000/127.0.0.1:$port:8000/" "$deploy/run.sh"
sed -i "s/127\.0\.0\.1:8000\"/127.0.0.1:$port\"/" "$deploy/flwr-config.toml"
grep -F "127.0.0.1:$port:8000" "$deploy/run.sh" >/dev/null || e2e_fail "run.sh publishes no 127.0.0.1:8000"

e2e_step "check is clean; sh run.sh starts a SuperExec per SuperNode and none for the SuperLink"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
e2e_track_network "$project"
for service in $(sed -n "s/^  --name \(${project}-[a-z0-9-]*\).*/\1/p; s/^  --name '\(${project}-[a-z0-9-]*\)'.*/\1/p" "$deploy/run.sh"); do
    e2e_track_container "$service"
done
sh "$deploy/run.sh" >/dev/null
runners="$(docker ps --filter "name=^${project}-" --format '{{.Image}}' | grep -c superexec || true)"
[ "$runners" -eq 2 ] || e2e_fail "expected 2 SuperExec containers (one per SuperNode), found $runners"
e2e_has_superexec_child "$project-superlink" || e2e_fail "the SuperLink runs no SuperExec child in subprocess isolation"

e2e_step "both SuperNodes connect; flwr run completes; check --live is clean"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project" 2 120
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300 >/dev/null
rc=0
report="$("$FLOWERBED" check --live "$project-superlink" "$project-supernode-1" "$project-supernode-2" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live exited $rc: $report"

e2e_step "stop.sh; release; delete"
sh "$deploy/stop.sh" >/dev/null 2>&1
"$FLOWERBED" release "$deploy/superlink-certificates" >/dev/null
rm -rf "$deploy"

e2e_end
