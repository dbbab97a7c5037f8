#!/usr/bin/env bash
# Docker Swarm for real: `flowerbed render swarm` on a quickstart folder whose certificates
# stay root's (the key 0600, never handed to 49999), `docker stack deploy` on a single-node
# swarm of the e2e engine. The superlink reads its key through the secret's uid/gid/mode
# (no chown on the host), both supernodes (one service, two replicas, each on its own data
# partition from its task slot) connect over TLS, and a `flwr run` completes; the state
# volume is writable by 49999 (the superlink's database is there). Then scale-out (issue
# 20): `docker service scale` to 16 supernodes, a run whose round has 16 results,
# and back to 2 with the runs recorded so far intact (state on the volume).
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin swarm
e2e_need_flowerbed

work="$(e2e_tmpdir)"
deploy="$work/deploy"
stack="$E2E_PREFIX"

# A swarm of one node, made here and left at the end; an engine already in a swarm is used
# as it is.
joined=0
state="$(docker info -f '{{.Swarm.LocalNodeState}}')"
if [ "$state" != active ]; then
    e2e_step "docker swarm init (single node)"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    joined=1
fi
stack_cleanup() {
    docker stack rm "$stack" >/dev/null 2>&1 || true
    # Services go first, then their network and secrets; wait so the next scenario starts
    # clean.
    for _ in $(seq 30); do
        docker network inspect "$stack" >/dev/null 2>&1 || break
        sleep 1
    done
    docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker volume rm >/dev/null 2>&1 || true
    if [ "$joined" -eq 1 ]; then
        docker swarm leave --force >/dev/null 2>&1 || true
    fi
}
trap 'stack_cleanup; e2e_cleanup' EXIT

e2e_step "quickstart (TLS, --state); certificates stay root's, the key 0600"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --state \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$stack" >/dev/null
# Undo what quickstart as root handed to 49999: Swarm secrets must do without it.
"$FLOWERBED" undo "$deploy/superlink-certificates" >/dev/null 2>&1 || true
chown -R 0:0 "$deploy/superlink-certificates"
chmod 600 "$deploy/superlink-certificates/server.key"
[ "$(stat -c %u:%a "$deploy/superlink-certificates/server.key")" = 0:600 ] ||
    e2e_fail "server.key is not root's 0600 before deploying"

e2e_step "render swarm; docker stack deploy"
port="$(e2e_free_port)"
"$FLOWERBED" render swarm "$deploy" --out "$deploy/stack.yaml" >/dev/null
grep -F 'endpoint_mode: dnsrr' "$deploy/stack.yaml" >/dev/null || e2e_fail "stack.yaml has no endpoint_mode"
# The superlink publishes the release's port in host mode; move it to a free one.
sed -i -E "s/^(      published: )8000$/\1$port/" "$deploy/stack.yaml"
grep -E "^      published: $port$" "$deploy/stack.yaml" >/dev/null || e2e_fail "no published port 8000 in stack.yaml"
docker stack deploy -c "$deploy/stack.yaml" "$stack" >/dev/null

e2e_step "the superlink runs, reading its key through the secret (uid 49999, mode 0400)"
superlink=""
for _ in $(seq 90); do
    superlink="$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_superlink" | head -n1)"
    [ -n "$superlink" ] && break
    sleep 1
done
[ -n "$superlink" ] || e2e_fail "no running superlink task after 90s: $(docker service ps --no-trunc "${stack}_superlink" 2>&1 | tail -n 3)"
e2e_track_container "$superlink"
key_seen="$(docker exec "$superlink" stat -c '%u:%g %a' /app/certificates/server.key)"
[ "$key_seen" = "49999:49999 400" ] || e2e_fail "the secret server.key inside is $key_seen, want 49999:49999 400"
[ "$(stat -c %u:%a "$deploy/superlink-certificates/server.key")" = 0:600 ] ||
    e2e_fail "the host's server.key changed owner or mode"
e2e_log "   server.key inside: $key_seen; on the host still 0:600 (no chown)"

e2e_step "both supernodes connect over TLS; flwr run completes"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$stack"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
sed -i -E "s/(address = \")[^\"]*\"/\1127.0.0.1:$port\"/" "$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$stack" 2 150
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$stack" 2 300 >/dev/null

e2e_step "the supernodes are one replicated service; each replica reads its own partition"
replicas="$(docker service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "${stack}_supernode")"
[ "$replicas" = 2 ] || e2e_fail "service ${stack}_supernode has $replicas replicas, want 2"
partitions=""
for container in $(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_supernode"); do
    # The process the entrypoint exec'd, with the partition worked out from the task slot.
    partitions="$partitions $(docker exec "$container" sh -c 'tr "\0" " " </proc/1/cmdline' | grep -o 'partition-id=[0-9]*')"
done
[ "$(echo "$partitions" | tr ' ' '\n' | sort -u | grep -c partition-id)" = 2 ] ||
    e2e_fail "the replicas do not read distinct partitions:$partitions"
e2e_log "   replicas: $replicas;$partitions"

e2e_step "scale out: docker service scale to 16 supernodes; a run takes all 16"
started=$SECONDS
docker service scale "${stack}_supernode=16" >/dev/null 2>&1 ||
    e2e_fail "docker service scale ${stack}_supernode=16 failed"
e2e_wait_supernodes "$flwr_home" "$stack" 16 240
e2e_log "   16 replicas up and connected $((SECONDS - started))s after the scale command"
first_run="$(e2e_flwr "$flwr_home" ls "$stack" --format json | e2e_json 'len(d.get("runs", []))')"
# One round: each node starts a ClientApp process per message, 32 Python starts on two
# cores for a round of 16.
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$stack" 1 600 >/dev/null
# The ServerApp's own log: the round trained on all 16 (FedAvg samples every node).
run_log="$(find "$flwr_home" -maxdepth 1 -name 'run-*.log' -newer "$flwr_home/config.toml" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2)"
rounds16="$(grep -c 'aggregate_train: Received 16 results and 0 failures' "$run_log" || true)"
[ "$rounds16" -eq 1 ] || { grep -E 'Received|Sampled' "$run_log" >&2; e2e_fail "the round had no 16 results"; }
e2e_log "   the round: 16 results and 0 failures"
memory="$(e2e_memory_report "${stack}_supernode.")"
e2e_log "   memory per supernode container: $memory"

e2e_step "scale back to 2: the runs so far stay recorded, and a run completes"
docker service scale "${stack}_supernode=2" >/dev/null 2>&1 ||
    e2e_fail "docker service scale ${stack}_supernode=2 failed"
# The superlink marks the 14 removed supernodes offline once their heartbeats stop.
online=16
for _ in $(seq 60); do
    online="$(e2e_flwr "$flwr_home" supernode list "$stack" --format json |
        e2e_json 'sum(1 for n in d.get("nodes", []) if n.get("status") == "online")')"
    [ "$online" -le 2 ] && break
    sleep 2
done
[ "$online" -eq 2 ] || e2e_fail "$online supernodes online after scaling back to 2"
runs="$(e2e_flwr "$flwr_home" ls "$stack" --format json | e2e_json 'len(d.get("runs", []))')"
[ "$runs" -eq $((first_run + 1)) ] || e2e_fail "the superlink lists $runs runs after scaling back, want $((first_run + 1))"
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$stack" 2 300 >/dev/null

e2e_step "the state volume is writable by 49999: the database is there"
db="$(docker exec "$superlink" sh -c 'ls -ln /app/state 2>/dev/null; stat -c "%u %s" /app/state/state.db 2>/dev/null')"
case "$db" in
    *"49999 "*) e2e_log "   /app/state: $(echo "$db" | tail -n1)" ;;
    *) e2e_fail "no state.db written by 49999 in the state volume: $db" ;;
esac

e2e_end
