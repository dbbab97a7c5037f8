#!/usr/bin/env bash
# The failure issue 17 fixes: the same app deployed without `--app` runs on Flower's stock
# images, which lack sortedcontainers, and the run fails with ModuleNotFoundError.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin app-without-app-images
e2e_need_flowerbed

work="$(e2e_tmpdir)"
isolation=process
project="$E2E_PREFIX"
deploy="$work/deploy"
app="$work/app"
cp -r "$E2E_ROOT/tests/e2e/app-deps" "$app"

e2e_step "quickstart without --app; start"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --isolation "$isolation" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
[ ! -e "$deploy/app-images" ] || e2e_fail "quickstart without --app rendered app images"
e2e_move_published_port "$deploy" "$(e2e_free_port)"
e2e_start_deployment "$deploy" "$project" "$isolation"
home="$work/flwr-home"
connection="$(e2e_connect "$deploy" "$project" "$app" "$home")"

e2e_step "flwr run fails: ModuleNotFoundError for sortedcontainers"
rc=0
timeout 300 env FLWR_HOME="$home" "$E2E_FLWR_VENV/bin/flwr" run "$app" "$connection" --stream \
    >"$work/run.log" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || e2e_fail "flwr run did not finish within 300s"
logs="$work/all.log"
cp "$work/run.log" "$logs"
for container in $(docker ps -a --filter "label=org.flowerbed.project=$project" --format '{{.Names}}'); do
    docker logs "$container" >>"$logs" 2>&1 || true
done
grep -q "ModuleNotFoundError: No module named 'sortedcontainers'" "$logs" ||
    { tail -n 30 "$logs" >&2; e2e_fail "no ModuleNotFoundError for sortedcontainers in the run or container logs"; }
! grep -q "sortedcontainers median residual" "$work/run.log" || e2e_fail "the run used sortedcontainers anyway"
e2e_stop_deployment "$deploy" "$project" "$isolation"
"$FLOWERBED" release "$deploy" >/dev/null

e2e_end
