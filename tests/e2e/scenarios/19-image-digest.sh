#!/usr/bin/env bash
# `--image-digest` for real: the local Flower images are pushed to a registry on loopback
# (Debian's docker-registry), which gives them registry digests; `quickstart --image-digest`
# names every image NAME:TAG@sha256:..., compose-lint finds nothing left to report, and the
# pinned, hardened compose deployment runs a `flwr run` over TLS to completion.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin image-digest
e2e_need_flowerbed

work="$(e2e_tmpdir)"

e2e_step "a registry on 127.0.0.1 (docker-registry, storage in the scenario's folder)"
if ! command -v docker-registry >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || e2e_fail "docker-registry is missing and only root can install it"
    # Debian's package tries to start its service; the policy layer may refuse, which is fine.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; } ||
        e2e_fail "cannot install docker-registry"
fi
port="$(e2e_free_port)"
registry="127.0.0.1:$port"
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: $registry
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
e2e_track_pid "$!"
for _ in $(seq 1 50); do
    curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://$registry/v2/" >/dev/null 2>&1 || { cat "$work/registry.log" >&2; e2e_fail "the registry does not answer"; }

e2e_step "push the superlink, supernode and superexec images (Docker trusts a loopback registry)"
repo="$registry/$E2E_IMAGE_REPO"
for component in superlink supernode superexec; do
    docker tag "$(e2e_image "$component")" "$repo/$component:$FLWR_VERSION"
    e2e_track_image "$repo/$component:$FLWR_VERSION"
    docker push --quiet "$repo/$component:$FLWR_VERSION" >/dev/null
done

project="$E2E_PREFIX"
deploy="$work/deploy"
e2e_step "quickstart --image-digest: every image named by its registry digest"
"$FLOWERBED" quickstart "$deploy" --isolation process --image-repo "$repo" --image-digest \
    --project-name "$project" 2>"$work/quickstart.err" >/dev/null
! grep -q 'image-digest' "$work/quickstart.err" || { cat "$work/quickstart.err" >&2; e2e_fail "quickstart could not pin every image"; }
for component in superlink supernode superexec; do
    digest="$(docker image inspect --format '{{index .RepoDigests 0}}' "$repo/$component:$FLWR_VERSION")"
    grep -qF "image: $repo/$component:$FLWR_VERSION@${digest#*@}" "$deploy/compose.yaml" ||
        e2e_fail "compose.yaml does not pin $component to ${digest#*@}"
done
if command -v compose-lint >/dev/null 2>&1; then
    findings="$(compose-lint check --format json "$deploy/compose.yaml" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')"
    [ "$findings" = 0 ] || e2e_fail "compose-lint still reports $findings findings on the pinned file"
fi
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check of the pinned deployment exited $rc: $report"
e2e_move_published_port "$deploy" "$(e2e_free_port)"

e2e_step "the pinned deployment starts and a flwr run completes over TLS"
e2e_start_deployment "$deploy" "$project" process
app="$work/app"
cp -r "$E2E_ROOT/tests/e2e/app" "$app"
connection="$(e2e_connect "$deploy" "$project" "$app" "$work/flwr-home")"
e2e_flwr_run_completes "$work/flwr-home" "$app" "$connection" 2 300 >/dev/null
for container in $(docker ps --filter "label=org.flowerbed.project=$project" --format '{{.Names}}'); do
    image="$(docker inspect --format '{{.Config.Image}}' "$container")"
    case "$image" in
        "$repo"/*@sha256:*) ;;
        *) e2e_fail "$container runs $image, not a pinned image" ;;
    esac
done
e2e_stop_deployment "$deploy" "$project" process
"$FLOWERBED" release "$deploy" >/dev/null

e2e_end
