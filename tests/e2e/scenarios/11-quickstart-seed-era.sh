#!/usr/bin/env bash
# Issue scenario 6, the seed-era profile through flowerbed's own files: `quickstart
# --flower-version 1.13.1` (TLS; gRPC ports 9091-9093), the rendered run.sh, the rendered
# pyproject federation table appended to the 1.13 app, a run completes, `check --live`
# is clean, stop.sh, release.
# flwr: 1.13.*
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-seed-era
e2e_need_flowerbed

project="$E2E_PREFIX"
work="$(e2e_tmpdir)"
deploy="$work/deploy"

e2e_step "flowerbed quickstart --flower-version $FLWR_VERSION"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
[ -s "$deploy/flwr-federation.toml" ] || e2e_fail "quickstart wrote no flwr-federation.toml for $FLWR_VERSION"
port="$(e2e_free_port)"
sed -i "s/127\.0\.0\.1:9093:9093/127.0.0.1:$port:9093/" "$deploy/run.sh"
sed -i "s/127\.0\.0\.1:9093\"/127.0.0.1:$port\"/" "$deploy/flwr-federation.toml"
grep -F "127.0.0.1:$port:9093" "$deploy/run.sh" >/dev/null || e2e_fail "run.sh publishes no 127.0.0.1:9093"

e2e_step "check is clean; sh run.sh; both SuperNodes register"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
e2e_track_network "$project"
for service in $(sed -n "s/^  --name \(${project}-[a-z0-9-]*\).*/\1/p" "$deploy/run.sh"); do
    e2e_track_container "$service"
done
sh "$deploy/run.sh" >/dev/null
e2e_wait_log_count "$project-superlink" 'Created node_id=[0-9]+' 2 120

e2e_step "flwr run of the 1.13 app through the rendered federation table completes"
app="$work/app"
cp -r "$E2E_ROOT/tests/e2e/app-1.13" "$app"
{
    printf '\n[tool.flwr.federations]\ndefault = "%s"\n\n' "$(sed -n 's/^\[tool\.flwr\.federations\.\([a-z0-9_-]*\)\]$/\1/p' "$deploy/flwr-federation.toml")"
    grep -v '^#' "$deploy/flwr-federation.toml"
} >>"$app/pyproject.toml"
federation="$(sed -n 's/^\[tool\.flwr\.federations\.\([a-z0-9_-]*\)\]$/\1/p' "$deploy/flwr-federation.toml")"
[ -n "$federation" ] || e2e_fail "no federation table in flwr-federation.toml"
e2e_flwr_run_completes "$work/flwr-home" "$app" "$federation" 2 300 >/dev/null
rc=0
report="$("$FLOWERBED" check --live "$project-superlink" "$project-supernode-1" "$project-supernode-2" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live exited $rc: $report"

e2e_step "stop.sh; release; delete"
sh "$deploy/stop.sh" >/dev/null 2>&1
"$FLOWERBED" release "$deploy/superlink-certificates" >/dev/null
rm -rf "$deploy"

e2e_end
