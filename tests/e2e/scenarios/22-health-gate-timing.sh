#!/usr/bin/env bash
# Issue 20, health-gated start measured side by side: the same process-isolation
# deployment started with the rendered compose.yaml (SuperNodes wait for the SuperLink's
# health check: `condition: service_healthy`) and with a copy that only waits for the
# SuperLink's container to start (`condition: service_started`, what a file without the
# gate does), alternately, twice each, on the same engine. Logs the time from `up` to both
# SuperNodes connected for every start; both ways must connect.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin health-timing
e2e_need_flowerbed

work="$(e2e_tmpdir)"
deploy="$work/deploy"
project="$E2E_PREFIX"

e2e_step "quickstart --isolation process; an ungated copy of compose.yaml"
"$FLOWERBED" quickstart "$deploy" --isolation process --flower-version "$FLWR_VERSION" \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
e2e_move_published_port "$deploy" "$(e2e_free_port)"
grep -F 'condition: service_healthy' "$deploy/compose.yaml" >/dev/null ||
    e2e_fail "compose.yaml gates nothing on the SuperLink's health"
sed 's/condition: service_healthy/condition: service_started/' "$deploy/compose.yaml" >"$deploy/ungated.yaml"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"

declare -A times=([gated]="" [ungated]="")
for round in 1 2; do
    for way in gated ungated; do
        file="$deploy/compose.yaml"
        [ "$way" = ungated ] && file="$deploy/ungated.yaml"
        e2e_step "round $round, $way: up until both SuperNodes are connected"
        started=$SECONDS
        e2e_compose "$file" up -d >/dev/null 2>&1 || e2e_fail "docker-compose up ($way) failed"
        e2e_wait_supernodes "$flwr_home" "$project" 2 180
        times[$way]="${times[$way]} $((SECONDS - started))s"
        e2e_compose "$file" down >/dev/null 2>&1 || e2e_fail "docker-compose down ($way) failed"
    done
done
e2e_log "   up -> both SuperNodes online: gated${times[gated]}; ungated${times[ungated]}"

e2e_end
