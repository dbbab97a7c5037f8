#!/usr/bin/env bash
# Every supported release, both isolation modes, only flowerbed's own files: `quickstart`
# with TLS, `check` exits 0, the deployment starts (subprocess: the rendered run.sh;
# process: the rendered compose.yaml with its app-runner containers), both SuperNodes
# register, a `flwr run` over TLS completes through the rendered flwr connection,
# `check --live` is clean, and the folder is handed back with `release`.
# flwr: *
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-every-release
e2e_need_flowerbed

work="$(e2e_tmpdir)"

# The app the release's API fits: 1.13 has the NumPyClient API only.
case "$FLWR_VERSION" in
    1.13.*) app_src="$E2E_ROOT/tests/e2e/app-1.13" ;;
    *) app_src="$E2E_ROOT/tests/e2e/app" ;;
esac

# quickstart publishes the release's fixed Control port on 127.0.0.1; other tests on this
# machine may hold it, so move it to a free one in the rendered files (same port inside).
move_published_port() {
    local deploy="$1" port="$2" fixed
    fixed="$(sed -n 's/.*--publish 127\.0\.0\.1:\([0-9]*\):\1.*/\1/p' "$deploy/run.sh" | sed -n 1p)"
    [ -n "$fixed" ] || e2e_fail "run.sh publishes no port on 127.0.0.1"
    sed -i "s/127\.0\.0\.1:$fixed:$fixed/127.0.0.1:$port:$fixed/" "$deploy/run.sh"
    # compose.yaml uses the long port syntax (target, published, host_ip).
    grep -F "published: \"$fixed\"" "$deploy/compose.yaml" >/dev/null ||
        e2e_fail "compose.yaml does not publish port $fixed"
    sed -i "s/published: \"$fixed\"/published: \"$port\"/" "$deploy/compose.yaml"
    sed -i "s/127\.0\.0\.1:$fixed\"/127.0.0.1:$port\"/" "$deploy"/flwr-*.toml
}

for isolation in subprocess process; do
    project="$E2E_PREFIX-$isolation"
    deploy="$work/$isolation"

    e2e_step "$isolation: quickstart --flower-version $FLWR_VERSION --isolation $isolation (TLS)"
    "$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --isolation "$isolation" \
        --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
    owner="$(stat -c %u:%g "$deploy/superlink-certificates/server.key")"
    [ "$owner" = 49999:49999 ] || e2e_fail "quickstart as root left server.key owned by $owner"
    move_published_port "$deploy" "$(e2e_free_port)"

    e2e_step "$isolation: check exits 0"
    rc=0
    report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
    [ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"

    e2e_step "$isolation: start; both SuperNodes register"
    start_began=$SECONDS
    if [ "$isolation" = subprocess ]; then
        e2e_track_network "$project"
        for container in $(sed -n "s/^  --name \(${project}-[a-z0-9-]*\).*/\1/p" "$deploy/run.sh"); do
            e2e_track_container "$container"
        done
        sh "$deploy/run.sh" >/dev/null
    else
        # Compose names containers by service; the project name keeps them apart.
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" up -d --quiet-pull >/dev/null 2>&1 ||
            { E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" logs --tail 20 >&2 || true
              e2e_fail "docker-compose up failed"; }
    fi
    superlink="$(docker ps --filter "label=org.flowerbed.project=$project" \
        --filter "label=org.flowerbed.service=superlink" --format '{{.Names}}' | sed -n 1p)"
    [ -n "$superlink" ] || e2e_fail "no running superlink container for $project"
    flwr_home="$work/flwr-home-$isolation"
    mkdir -p "$flwr_home"
    app="$work/app-$isolation"
    if e2e_flwr_uses_pyproject_federations; then
        federation="$(sed -n 's/^\[tool\.flwr\.federations\.\([a-z0-9_-]*\)\]$/\1/p' "$deploy/flwr-federation.toml")"
        [ -n "$federation" ] || e2e_fail "no federation table in flwr-federation.toml"
        cp -r "$app_src" "$app"
        {
            printf '\n[tool.flwr.federations]\ndefault = "%s"\n\n' "$federation"
            grep -v '^#' "$deploy/flwr-federation.toml"
        } >>"$app/pyproject.toml"
        connection="$federation"
        e2e_wait_log_count "$superlink" 'Created node_id=[0-9]+' 2 120
    else
        connection="$project"
        {
            printf '[superlink]\ndefault = "%s"\n\n' "$connection"
            cat "$deploy/flwr-config.toml"
        } >"$flwr_home/config.toml"
        grep -F "[superlink.$connection]" "$flwr_home/config.toml" >/dev/null ||
            e2e_fail "flwr-config.toml has no [superlink.$connection] table"
        cp -r "$app_src" "$app"
        e2e_wait_supernodes "$flwr_home" "$connection" 2 120
    fi
    # The figure the health-gated start is judged by: from the start command to both online.
    e2e_log "   from start to both SuperNodes online: $((SECONDS - start_began))s ($isolation, Flower $FLWR_VERSION)"

    e2e_step "$isolation: flwr run completes 2 rounds over TLS; check --live is clean"
    e2e_flwr_run_completes "$flwr_home" "$app" "$connection" 2 300 >/dev/null
    containers="$(docker ps --filter "label=org.flowerbed.project=$project" --format '{{.Names}}')"

    e2e_step "$isolation: every container ran hardened (read-only root, no capabilities, limits)"
    # The run above went through every container read-only: a path Flower writes that the
    # release's scratch list misses fails here, for this release.
    for container in $containers; do
        hardening="$(docker inspect --format \
            '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}' \
            "$container")"
        [ "$hardening" = "true [ALL] [no-new-privileges:true] 4294967296 1024 2000000000" ] ||
            e2e_fail "$container is not hardened as rendered: $hardening"
        scratch="$(docker exec "$container" sh -c 'for d in /app/.flwr /app/.cache /app/.config /tmp /var/tmp; do touch "$d/.w" && rm "$d/.w" || exit 1; done; touch /app/.w 2>/dev/null && echo writable-root; exit 0')" ||
            e2e_fail "$container: a scratch folder is not writable by $(docker exec "$container" id -u)"
        [ -z "$scratch" ] || e2e_fail "$container: the root filesystem is writable"
    done
    # shellcheck disable=SC2086  # one name per word
    rc=0
    report="$("$FLOWERBED" check --live $containers --json)" || rc=$?
    [ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live exited $rc: $report"

    e2e_step "$isolation: stop; release; delete"
    if [ "$isolation" = subprocess ]; then
        sh "$deploy/stop.sh" >/dev/null 2>&1
    else
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" down >/dev/null 2>&1
    fi
    "$FLOWERBED" release "$deploy" >/dev/null
    rm -rf "$deploy"
done

e2e_end
