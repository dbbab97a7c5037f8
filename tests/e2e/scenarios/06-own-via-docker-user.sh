#!/usr/bin/env bash
# A non-root user in the docker group, no sudo: makes certificates, hands the SuperLink's
# folder to UID 49999 with `flowerbed own --via-docker` (whose helper runs the deployment's
# own superlink image, named in flowerbed.json, with no --helper-image), runs the SuperLink from it (which
# `flowerbed check --live` finds clean), cannot delete the folder afterwards, gets it back
# with `flowerbed release --via-docker`, and deletes it.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin own-via-docker-user
e2e_need_flowerbed

user=flowerbed-e2e
helper="$(e2e_image superlink)"
superlink="$E2E_PREFIX-superlink"

e2e_step "a user in the docker group, not root, who can reach the engine"
getent group docker >/dev/null || e2e_fail "no docker group on this machine"
e2e_user "$user" docker
work="$(e2e_tmpdir)"
chown "$user:" "$work"
# The binary must be reachable by the user: a copy in its own folder.
cp "$FLOWERBED" "$work/flowerbed"
chown "$user:" "$work/flowerbed"
e2e_as "$user" docker info >/dev/null || e2e_fail "$user cannot reach the Docker engine"
[ "$(e2e_as "$user" id -u)" -ne 0 ] || e2e_fail "$user is root"

e2e_step "as $user: certs generate and quickstart, then own --via-docker (the deployment's image)"
deploy="$work/deploy"
e2e_as "$user" "$work/flowerbed" certs generate "$deploy" >/dev/null
# quickstart keeps the certificates and records the deployment (its images) in flowerbed.json.
e2e_as "$user" "$work/flowerbed" quickstart "$deploy" --image-repo "$E2E_IMAGE_REPO" --no-own -q
# No --helper-image: the helper runs the deployment's own superlink image, and says so.
said="$(e2e_as "$user" "$work/flowerbed" own --via-docker "$deploy/superlink-certificates" 2>&1 >/dev/null)"
grep -qF "the helper ran $helper (the image of the deployment in $deploy;" <<<"$said" ||
    e2e_fail "own --via-docker did not use (or name) the deployment's image $helper: $said"
for file in "$deploy/superlink-certificates" "$deploy/superlink-certificates/server.key"; do
    owner="$(stat -c %u:%g "$file")"
    [ "$owner" = 49999:49999 ] || e2e_fail "$file is owned by $owner after own --via-docker"
done
e2e_log "   superlink-certificates and its key now belong to 49999:49999"

e2e_step "as $user: the SuperLink starts from that folder, and check --live is clean"
e2e_track_container "$superlink"
e2e_as "$user" docker run -d --name "$superlink" \
    --volume "$deploy/superlink-certificates:/app/certificates:ro" \
    "$(e2e_image superlink)" \
    --isolation subprocess --host 0.0.0.0 \
    --ssl-ca-certfile certificates/ca.crt \
    --ssl-certfile certificates/server.pem \
    --ssl-keyfile certificates/server.key \
    --disable-runtime-dependency-installation >/dev/null
started=$SECONDS
until docker logs "$superlink" 2>&1 | grep 'Uvicorn running on https' >/dev/null; do
    e2e_assert_running "$superlink"
    [ $((SECONDS - started)) -lt 60 ] || e2e_fail "the SuperLink did not start serving within 60s"
    sleep 1
done
rc=0
report="$("$work/flowerbed" check --live "$superlink" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live $superlink (as root) exited $rc: $report"
e2e_log "   SuperLink serving over TLS; check --live (as root) exit 0"
# As the user, check cannot read the key it handed to 49999: that is a warning (the TLS
# checks were not run), not a failure, and nothing else may be reported.
rc=0
report="$(e2e_as "$user" "$work/flowerbed" check --live "$superlink" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check --live as $user exited $rc: $report"
ids="$(e2e_json '" ".join(f["id"] for f in d["findings"])' <<<"$report")"
[ "$ids" = tls-not-verified ] || e2e_fail "check --live as $user: expected only tls-not-verified, got: $ids"
e2e_log "   check --live as $user: exit 0, tls-not-verified (the key is 49999's now)"
docker rm -f "$superlink" >/dev/null

e2e_step "as $user: the folder cannot be deleted now; release --via-docker, then it can"
if e2e_as "$user" rm -rf "$deploy/superlink-certificates" 2>/dev/null; then
    e2e_fail "$user deleted a folder owned by 49999 without release"
fi
e2e_as "$user" "$work/flowerbed" release --via-docker --helper-image "$helper" "$deploy" >/dev/null
owner="$(stat -c %u "$deploy/superlink-certificates/server.key")"
[ "$owner" = "$(id -u "$user")" ] || e2e_fail "server.key is owned by $owner after release, not $user"
e2e_as "$user" rm -rf "$deploy" || e2e_fail "$user could not delete the released folder"
[ ! -e "$deploy" ] || e2e_fail "$deploy still exists after rm -rf"
e2e_log "   released to $user and deleted without sudo"

e2e_end
