#!/usr/bin/env bash
# Issue 20, scale-out on one host: `quickstart --supernodes 16` started with the rendered
# compose.yaml, then (after it is taken down) with the rendered run.sh. Each time all 16
# SuperNodes connect over TLS, and the memory of each SuperNode container is logged.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin sixteen
e2e_need_flowerbed

work="$(e2e_tmpdir)"

for way in compose run-sh; do
    project="$E2E_PREFIX-$way"
    deploy="$work/$way"
    e2e_step "$way: quickstart --supernodes 16 (TLS)"
    "$FLOWERBED" quickstart "$deploy" --supernodes 16 --flower-version "$FLWR_VERSION" \
        --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
    e2e_move_published_port "$deploy" "$(e2e_free_port)"
    flwr_home="$work/flwr-home-$way"
    mkdir -p "$flwr_home"
    {
        printf '[superlink]\ndefault = "%s"\n\n' "$project"
        cat "$deploy/flwr-config.toml"
    } >"$flwr_home/config.toml"

    e2e_step "$way: start; all 16 SuperNodes connect"
    started=$SECONDS
    if [ "$way" = compose ]; then
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" up -d >/dev/null 2>&1 ||
            e2e_fail "docker-compose up failed"
    else
        e2e_start_deployment "$deploy" "$project" subprocess
    fi
    e2e_wait_supernodes "$flwr_home" "$project" 16 240
    e2e_log "   16 SuperNodes online $((SECONDS - started))s after the start command"
    e2e_log "   memory per SuperNode container ($way): $(e2e_memory_report "$project-supernode-")"

    e2e_step "$way: take it down"
    if [ "$way" = compose ]; then
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" down >/dev/null 2>&1 ||
            e2e_fail "docker-compose down failed"
    else
        sh "$deploy/stop.sh" >/dev/null 2>&1 || e2e_fail "stop.sh failed"
    fi
done

e2e_end
