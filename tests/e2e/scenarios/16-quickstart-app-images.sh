#!/usr/bin/env bash
# The user's own app in the deployment (issue 17): an app whose ClientApp and ServerApp
# import sortedcontainers, which Flower's images lack. `quickstart --app` renders one
# Dockerfile per component that runs app code, `flowerbed wheels` downloads the wheels on
# the host, the images build with no network inside the build (`--network none`), and a
# `flwr run` over TLS completes with the ServerApp's summary showing the dependency was
# used. Newest release: both isolation modes; 1.13: process mode (serverapp/clientapp).
# flwr: newest 1.13.*
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin quickstart-app-images
e2e_need_flowerbed

work="$(e2e_tmpdir)"
case "$FLWR_VERSION" in
    1.13.*) app_src="$E2E_ROOT/tests/e2e/app-deps-1.13" isolations="process" ;;
    *) app_src="$E2E_ROOT/tests/e2e/app-deps" isolations="subprocess process" ;;
esac

for isolation in $isolations; do
    project="$E2E_PREFIX-$isolation"
    deploy="$work/$isolation"
    app="$work/app-$isolation"
    cp -r "$app_src" "$app"

    e2e_step "$isolation: quickstart --app (TLS); flowerbed wheels"
    "$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --isolation "$isolation" \
        --image-repo "$E2E_IMAGE_REPO" --project-name "$project" --app "$app" >/dev/null
    "$FLOWERBED" wheels "$deploy" >/dev/null
    ls "$deploy"/app-wheels/sortedcontainers-*.whl >/dev/null ||
        e2e_fail "flowerbed wheels downloaded no sortedcontainers wheel"
    e2e_move_published_port "$deploy" "$(e2e_free_port)"

    e2e_step "$isolation: the app images build with no network in the build"
    builds="$(grep -c '^docker build ' "$deploy/run.sh" || true)"
    case "$FLWR_VERSION/$isolation" in
        1.13.*/process) want="serverapp clientapp" ;;
        */process) want="superexec" ;;
        *) want="superlink supernode" ;;
    esac
    for component in $want; do
        dockerfile="$deploy/app-images/$component.Dockerfile"
        [ -s "$dockerfile" ] || e2e_fail "no Dockerfile for $component"
        grep -q -- '--no-index --find-links' "$dockerfile" || e2e_fail "$dockerfile does not install offline"
        image="$project/$component-app:$FLWR_VERSION"
        e2e_track_image "$image"
        docker build --quiet --network none --file "$dockerfile" --tag "$image" "$deploy" >/dev/null ||
            e2e_fail "docker build --network none of $component failed"
        docker run --rm --network none --entrypoint python "$image" -c \
            "import flwr, sortedcontainers; assert flwr.__version__ == '$FLWR_VERSION', flwr.__version__" ||
            e2e_fail "$image lacks sortedcontainers or changed flwr"
        [ "$(docker image inspect --format '{{.Config.User}}' "$image")" = 49999:49999 ] ||
            e2e_fail "$image does not run as 49999:49999"
    done
    [ "$builds" -eq "$(wc -w <<<"$want")" ] || e2e_fail "run.sh builds $builds images, expected: $want"

    e2e_step "$isolation: check exits 0; start; both SuperNodes register"
    rc=0
    report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
    [ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
    e2e_start_deployment "$deploy" "$project" "$isolation"
    connection="$(e2e_connect "$deploy" "$project" "$app" "$work/flwr-home-$isolation")"

    e2e_step "$isolation: flwr run completes over TLS, using sortedcontainers in the app"
    e2e_flwr_run_completes "$work/flwr-home-$isolation" "$app" "$connection" 2 300 >/dev/null
    grep -q "sortedcontainers median residual" "$work"/flwr-home-"$isolation"/run-*.log ||
        e2e_fail "the ServerApp's summary does not show the sortedcontainers result"
    e2e_stop_deployment "$deploy" "$project" "$isolation"
    "$FLOWERBED" release "$deploy" >/dev/null
done

e2e_end
