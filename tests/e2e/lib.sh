# Helpers for flowerbed's live end-to-end scenarios. Source it from a scenario script:
#     source "$(dirname "$0")/../lib.sh"; e2e_begin NAME
# tests/e2e/run.sh sets the environment (engine up, images built, flwr venv ready):
#   FLWR_VERSION     the Flower release under test          (default the newest supported)
#   E2E_IMAGE_REPO   the local image repository             (default flowerbed-local)
#   E2E_FLWR_VENV    a host venv with that flwr release      (required by the flwr helpers)
#   FLOWERBED        the flowerbed binary                    (for scenarios that need it)
#   E2E_KEEP=1       keep temp folders, containers and networks of a failed scenario
# Everything a scenario creates is registered here and removed by name when it exits.
# shellcheck shell=bash disable=SC2034  # variables here are for the scripts that source it

set -Eeuo pipefail

E2E_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Unset only when a scenario runs by hand: the profile table's newest, as run.sh defaults.
FLWR_VERSION="${FLWR_VERSION:-$("$E2E_ROOT/scripts/flower-releases.sh" | tail -n 1)}"
E2E_IMAGE_REPO="${E2E_IMAGE_REPO:-flowerbed-local}"
E2E_NAME=""
E2E_PREFIX=""
# What the scenario made, one "KIND NAME" a line: a file, so helpers called in $(...)
# subshells register too.
E2E_REGISTRY=""
E2E_STEP_NAME=""
E2E_STEP_STARTED=0

e2e_log() { echo "[$E2E_NAME] $*" >&2; }

e2e_fail() {
    e2e_log "FAIL: $*"
    exit 1
}

# Start a scenario: names its resources "fbe2e-NAME-PID-..." and cleans them up on exit.
e2e_begin() {
    E2E_NAME="$1"
    E2E_PREFIX="fbe2e-$1-$$"
    E2E_REGISTRY="$(mktemp "${TMPDIR:-/tmp}/$E2E_PREFIX.registry.XXXXXX")"
    trap e2e_cleanup EXIT
    # set -e would otherwise end a scenario silently; say which command failed, and where.
    trap 'e2e_log "FAIL: exit $? from: $BASH_COMMAND (${BASH_SOURCE[0]##*/}:$LINENO)"' ERR
    trap 'exit 130' INT TERM
    e2e_log "scenario $E2E_NAME (Flower $FLWR_VERSION, images $E2E_IMAGE_REPO)"
}

# Time the steps of a scenario: e2e_step "what"; ...; the next e2e_step or e2e_end closes it.
e2e_step() {
    e2e_step_close
    E2E_STEP_NAME="$*"
    E2E_STEP_STARTED=$SECONDS
    e2e_log "-> $E2E_STEP_NAME"
}

e2e_step_close() {
    if [ -n "$E2E_STEP_NAME" ]; then
        e2e_log "   ($((SECONDS - E2E_STEP_STARTED))s) $E2E_STEP_NAME"
        E2E_STEP_NAME=""
    fi
}

e2e_end() {
    e2e_step_close
    e2e_log "PASS"
}

e2e_registered() { sed -n "s/^$1 //p" "$E2E_REGISTRY"; }

e2e_cleanup() {
    local status=$? name
    e2e_step_close
    [ -n "$E2E_REGISTRY" ] || return 0
    if [ "$status" -ne 0 ]; then
        local project file
        while read -r project file; do
            e2e_log "--- compose project $project:"
            docker-compose --project-name "$project" --file "$file" ps -a 2>&1 | sed 's/^/    /' >&2 || true
            docker-compose --project-name "$project" --file "$file" logs --no-color --tail 25 2>&1 |
                sed 's/\x1b\[[0-9;]*m//g; s/^/    /' >&2 || true
        done < <(e2e_registered compose)
        for name in $(e2e_registered container); do
            e2e_log "--- last log lines of $name ($(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$name" 2>/dev/null || echo gone)):"
            docker logs --tail 25 "$name" 2>&1 | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' >&2 || true
        done
        if [ "${E2E_KEEP:-0}" = 1 ]; then
            e2e_log "E2E_KEEP=1: leaving what it made:"
            sed 's/^/    /' "$E2E_REGISTRY" >&2
            return
        fi
    fi
    # Reverse order: containers go before the networks they sit on.
    tac "$E2E_REGISTRY" | while read -r kind name file; do
        case "$kind" in
            compose)
                docker-compose --project-name "$name" --file "$file" down --volumes --remove-orphans \
                    --timeout 5 >/dev/null 2>&1 || true
                ;;
            container) docker rm -f "$name" >/dev/null 2>&1 || true ;;
            network) docker network rm "$name" >/dev/null 2>&1 || true ;;
            image) docker image rm --force "$name" >/dev/null 2>&1 || true ;;
            dir) rm -rf "$name" ;;
            user) userdel --remove "$name" >/dev/null 2>&1 || true ;;
            pid) kill "$name" >/dev/null 2>&1 || true ;;
        esac
    done
    rm -f "$E2E_REGISTRY"
}

# A fresh temp folder, removed at the end; prints its absolute path.
e2e_tmpdir() {
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/$E2E_PREFIX.XXXXXX")"
    echo "dir $dir" >>"$E2E_REGISTRY"
    echo "$dir"
}

e2e_image() { echo "$E2E_IMAGE_REPO/$1:$FLWR_VERSION"; }

# Register names before creating, so a half-made resource is still cleaned up.
e2e_track_container() { echo "container $1" >>"$E2E_REGISTRY"; }
e2e_track_network() { echo "network $1" >>"$E2E_REGISTRY"; }
# An image the scenario builds (removed at the end, after the containers).
e2e_track_image() { echo "image $1" >>"$E2E_REGISTRY"; }
# A process the scenario started in the background (ended by its id at the end).
e2e_track_pid() { echo "pid $1" >>"$E2E_REGISTRY"; }

# e2e_network SUFFIX: create a user-defined bridge network; prints its name.
e2e_network() {
    local name="$E2E_PREFIX-$1"
    e2e_track_network "$name"
    docker network create --label org.flowerbed.e2e="$E2E_PREFIX" "$name" >/dev/null
    echo "$name"
}

# e2e_container SUFFIX DOCKER-RUN-ARGS...: `docker run -d` named PREFIX-SUFFIX.
e2e_container() {
    local name="$E2E_PREFIX-$1"
    shift
    e2e_track_container "$name"
    docker run -d --name "$name" --label org.flowerbed.e2e="$E2E_PREFIX" "$@" >/dev/null
}

# A TCP port on 127.0.0.1 that is free right now (the kernel picks it).
e2e_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# e2e_openssl_certs DIR SAN: a CA and a server certificate in Flower's file layout
# (ca.crt ca.key server.csr server.key server.pem; keys 0600, owned by whoever runs this).
# SAN as openssl writes it, e.g. "DNS:superlink,DNS:localhost,IP:127.0.0.1,IP:::1".
# Stand-in until `flowerbed certs generate` lands.
e2e_openssl_certs() {
    local dir="$1" san="$2"
    mkdir -p "$dir"
    (
        cd "$dir"
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
            -keyout ca.key -out ca.crt -subj "/CN=flowerbed e2e CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout server.key -out server.csr -subj "/CN=superlink" 2>/dev/null
        printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$san" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
            -extfile server.ext -out server.pem 2>/dev/null
        rm -f server.ext ca.srl
        chmod 0644 ca.crt server.pem server.csr
    ) || e2e_fail "openssl could not make certificates in $dir"
}

# e2e_flwr_home DIR NAME ADDRESS CA_FILE: a flwr CLI home (config.toml) with one SuperLink
# connection NAME over TLS, made the default; prints DIR.
e2e_flwr_home() {
    local dir="$1" name="$2" address="$3" ca="$4"
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<EOF
[superlink]
default = "$name"

[superlink.$name]
address = "$address"
root-certificates = "$ca"
EOF
    echo "$dir"
}

# e2e_flwr FLWR_HOME ARGS...: the host's flwr CLI (release under test) with that home.
e2e_flwr() {
    local home="$1"
    shift
    [ -x "${E2E_FLWR_VENV:-}/bin/flwr" ] || e2e_fail "E2E_FLWR_VENV has no flwr (run via tests/e2e/run.sh)"
    FLWR_HOME="$home" "$E2E_FLWR_VENV/bin/flwr" "$@"
}

# Read a JSON document on stdin and print the result of a Python expression over it (`d`).
e2e_json() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

e2e_assert_running() {
    local container="$1" state
    state="$(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$container")"
    case "$state" in
        running*) ;;
        *) e2e_fail "$container is not running ($state)" ;;
    esac
}

# e2e_has_superexec_child CONTAINER: true if a flower-superexec runs inside it within 15 s
# (subprocess isolation starts it a few seconds after the component itself).
e2e_has_superexec_child() {
    local started=$SECONDS processes
    while [ $((SECONDS - started)) -lt 15 ]; do
        # `docker top` needs a pid column. Not `docker top | grep -q`: with pipefail,
        # grep's early exit would fail the pipe.
        processes="$(docker top "$1" -o pid,args)" || e2e_fail "docker top $1 failed"
        grep -q 'flower-superexec' <<<"$processes" && return 0
        sleep 1
    done
    return 1
}

# e2e_wait_supernodes FLWR_HOME CONNECTION COUNT TIMEOUT: until the SuperLink lists COUNT
# online SuperNodes (asked with `flwr supernode list`), or fail.
e2e_wait_supernodes() {
    local home="$1" connection="$2" want="$3" timeout="$4" started=$SECONDS online=0 answer
    while [ $((SECONDS - started)) -lt "$timeout" ]; do
        # Exit 0 with "success": false while the SuperLink is unreachable: count nodes only.
        if answer="$(e2e_flwr "$home" supernode list "$connection" --format json 2>/dev/null)"; then
            online="$(e2e_json 'sum(1 for n in d.get("nodes", []) if n.get("status") == "online")' <<<"$answer" 2>/dev/null || echo 0)"
            if [ "$online" -ge "$want" ]; then
                e2e_log "   $online SuperNodes online after $((SECONDS - started))s"
                return 0
            fi
        fi
        sleep 2
    done
    e2e_fail "only $online of $want SuperNodes online after ${timeout}s (flwr supernode list)"
}

# True when the release under test reads SuperLink connections from the app's
# pyproject.toml ([tool.flwr.federations]) rather than FLWR_HOME/config.toml (1.35 on).
e2e_flwr_uses_pyproject_federations() {
    [ "$(printf '%s\n%s\n' "$FLWR_VERSION" 1.35.0 | sort -V | sed -n 1p)" != 1.35.0 ]
}

# e2e_app_with_federation SRC_APP DEST NAME ADDRESS CA_FILE: copy an app and make NAME its
# default federation over TLS (for releases that read connections from pyproject.toml).
e2e_app_with_federation() {
    local src="$1" dest="$2" name="$3" address="$4" ca="$5"
    cp -r "$src" "$dest"
    printf '\n[tool.flwr.federations]\ndefault = "%s"\n\n[tool.flwr.federations.%s]\naddress = "%s"\nroot-certificates = "%s"\n' \
        "$name" "$name" "$address" "$ca" >>"$dest/pyproject.toml"
}

# e2e_wait_log_count CONTAINER REGEX COUNT TIMEOUT: until COUNT distinct matches of REGEX
# appear in the container's log (for releases whose CLI cannot list SuperNodes).
e2e_wait_log_count() {
    local container="$1" regex="$2" want="$3" timeout="$4" started=$SECONDS found=0
    while [ $((SECONDS - started)) -lt "$timeout" ]; do
        found="$({ docker logs "$container" 2>&1 | grep -oE "$regex" || true; } | sort -u | wc -l)"
        if [ "$found" -ge "$want" ]; then
            e2e_log "   $found x '$regex' in $container after $((SECONDS - started))s"
            return 0
        fi
        e2e_assert_running "$container"
        sleep 2
    done
    e2e_fail "only $found of $want x '$regex' in $container's log after ${timeout}s"
}

# e2e_flwr_run_completes FLWR_HOME APP_DIR CONNECTION ROUNDS TIMEOUT: `flwr run --stream` the
# app and assert, from the SuperLink's own record (`flwr ls --run-id`), that the run finished
# as completed; the test app fails its run unless all ROUNDS ran and the model learnt.
# (`flwr run --stream` exits 0 even when the ServerApp fails, so its exit code alone proves
# nothing.) CONNECTION is a config.toml connection, or a pyproject federation on releases
# before 1.35. Prints the run id.
e2e_flwr_run_completes() {
    local home="$1" app="$2" connection="$3" rounds="$4" timeout="$5"
    local log="$home/run-$SECONDS.log" rc=0 run_id status answer ls_target=("$connection")
    e2e_flwr_uses_pyproject_federations && ls_target=("$app" "$connection")
    mkdir -p "$home"
    timeout "$timeout" env FLWR_HOME="$home" "$E2E_FLWR_VENV/bin/flwr" run "$app" "$connection" \
        --stream --run-config "num-server-rounds=$rounds" >"$log" 2>&1 || rc=$?
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log" >&2
        [ "$rc" -eq 124 ] && e2e_fail "flwr run did not finish within ${timeout}s"
        e2e_fail "flwr run exited $rc"
    fi
    # shellcheck disable=SC2016  # the backquotes are literal, in flwr's own output
    run_id="$(sed -n 's/.*logstream for run_id `\([0-9]*\)`.*/\1/p' "$log" | sed -n 1p)"
    [ -n "$run_id" ] || { tail -n 30 "$log" >&2; e2e_fail "flwr run printed no run id"; }
    # `flwr ls --format json` exits 0 even when it could not reach the SuperLink: read "success".
    if answer="$(e2e_flwr "$home" ls "${ls_target[@]}" --run-id "$run_id" --format json 2>/dev/null)" &&
        [ "$(e2e_json 'd.get("success")' <<<"$answer" 2>/dev/null)" = True ]; then
        status="$(e2e_json '" ".join(r["status"] for r in d["runs"])' <<<"$answer")"
    elif e2e_json 'd["error-message"]' <<<"$answer" >/dev/null 2>&1; then
        e2e_fail "flwr ls --run-id $run_id: $(e2e_json 'd["error-message"]' <<<"$answer")"
    else
        # Older CLIs print only a table; widen it so no cell is cut.
        answer="$(COLUMNS=400 e2e_flwr "$home" ls "${ls_target[@]}" --run-id "$run_id" 2>&1)" ||
            e2e_fail "flwr ls --run-id $run_id failed: $answer"
        status="$(grep -F "$run_id" <<<"$answer" | grep -oE '(pending|starting|running|finished:[a-z]+)' | sed -n 1p || true)"
    fi
    if [ "$status" != "finished:completed" ]; then
        tail -n 30 "$log" >&2
        e2e_fail "run $run_id ended as '${status:-unknown}' (flwr ls: $answer)"
    fi
    grep -q "flowerbed-e2e: completed $rounds rounds" "$log" ||
        e2e_fail "run $run_id completed but its log lacks the ServerApp's $rounds-round summary"
    e2e_log "   run $run_id: $status, $(grep -o "completed $rounds rounds.*" "$log" | sed -n 1p)"
    echo "$run_id"
}

# e2e_need_flowerbed: fail unless the flowerbed binary is there (run.sh builds it for
# scenarios whose header says "# needs: flowerbed").
e2e_need_flowerbed() {
    [ -x "${FLOWERBED:-}" ] || e2e_fail "no flowerbed binary at '${FLOWERBED:-}' (set FLOWERBED or run via tests/e2e/run.sh)"
}

# e2e_compose FILE ARGS...: docker-compose for FILE under project PREFIX; the first call
# registers the project, and cleanup takes it down (containers, networks, its volumes).
e2e_compose() {
    local file="$1"
    shift
    grep -qxF "compose $E2E_PREFIX $file" "$E2E_REGISTRY" || echo "compose $E2E_PREFIX $file" >>"$E2E_REGISTRY"
    docker-compose --project-name "$E2E_PREFIX" --file "$file" "$@"
}

# e2e_user NAME [GROUP...]: a local non-root user (made now, removed at the end, unless it
# existed before) with those supplementary groups; run commands as it with e2e_as.
e2e_user() {
    local name="$1"
    shift
    if ! id "$name" >/dev/null 2>&1; then
        echo "user $name" >>"$E2E_REGISTRY"
        useradd --create-home --shell /bin/bash "$name"
    fi
    local group
    for group in "$@"; do usermod --append --groups "$group" "$name"; done
}

# e2e_as USER COMMAND...: run a command as USER (with its groups), in its home, no sudo.
e2e_as() {
    local user="$1"
    shift
    (cd / && runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@")
}

# e2e_move_published_port DEPLOY PORT: quickstart publishes the release's fixed Control port
# on 127.0.0.1; other tests on this machine may hold it, so move it to PORT in the rendered
# run.sh, compose.yaml and flwr connection (same port inside the container).
e2e_move_published_port() {
    local deploy="$1" port="$2" fixed
    fixed="$(sed -n 's/.*--publish 127\.0\.0\.1:\([0-9]*\):\1.*/\1/p' "$deploy/run.sh" | sed -n 1p)"
    [ -n "$fixed" ] || e2e_fail "run.sh publishes no port on 127.0.0.1"
    sed -i "s/127\.0\.0\.1:$fixed:$fixed/127.0.0.1:$port:$fixed/" "$deploy/run.sh"
    grep -F "published: \"$fixed\"" "$deploy/compose.yaml" >/dev/null ||
        e2e_fail "compose.yaml does not publish port $fixed"
    sed -i "s/published: \"$fixed\"/published: \"$port\"/" "$deploy/compose.yaml"
    sed -i "s/127\.0\.0\.1:$fixed\"/127.0.0.1:$port\"/" "$deploy"/flwr-*.toml
}

# e2e_start_deployment DEPLOY PROJECT ISOLATION: subprocess with the rendered run.sh,
# process with the rendered compose.yaml (its containers tracked either way).
e2e_start_deployment() {
    local deploy="$1" project="$2" isolation="$3" container
    if [ "$isolation" = subprocess ]; then
        e2e_track_network "$project"
        for container in $(sed -n "s/^  --name \(${project}-[a-z0-9-]*\).*/\1/p" "$deploy/run.sh"); do
            e2e_track_container "$container"
        done
        sh "$deploy/run.sh" >/dev/null
    else
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" up -d --quiet-pull >/dev/null 2>&1 ||
            { E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" logs --tail 20 >&2 || true
              e2e_fail "docker-compose up failed"; }
    fi
}

# e2e_stop_deployment DEPLOY PROJECT ISOLATION: the matching stop.sh or compose down.
e2e_stop_deployment() {
    local deploy="$1" project="$2" isolation="$3"
    if [ "$isolation" = subprocess ]; then
        sh "$deploy/stop.sh" >/dev/null 2>&1
    else
        E2E_PREFIX="$project" e2e_compose "$deploy/compose.yaml" down >/dev/null 2>&1
    fi
}

# e2e_connect DEPLOY PROJECT APP FLWR_HOME: point the flwr CLI at the deployment through its
# rendered connection (FLWR_HOME/config.toml, or the app's pyproject before 1.35), wait for
# both SuperNodes, and print the connection name.
e2e_connect() {
    local deploy="$1" project="$2" app="$3" home="$4" federation superlink
    mkdir -p "$home"
    if e2e_flwr_uses_pyproject_federations; then
        federation="$(sed -n 's/^\[tool\.flwr\.federations\.\([a-z0-9_-]*\)\]$/\1/p' "$deploy/flwr-federation.toml")"
        [ -n "$federation" ] || e2e_fail "no federation table in flwr-federation.toml"
        {
            printf '\n[tool.flwr.federations]\ndefault = "%s"\n\n' "$federation"
            grep -v '^#' "$deploy/flwr-federation.toml"
        } >>"$app/pyproject.toml"
        superlink="$(docker ps --filter "label=org.flowerbed.project=$project" \
            --filter "label=org.flowerbed.service=superlink" --format '{{.Names}}' | sed -n 1p)"
        [ -n "$superlink" ] || e2e_fail "no running superlink container for $project"
        e2e_wait_log_count "$superlink" 'Created node_id=[0-9]+' 2 120
        echo "$federation"
    else
        {
            printf '[superlink]\ndefault = "%s"\n\n' "$project"
            cat "$deploy/flwr-config.toml"
        } >"$home/config.toml"
        e2e_wait_supernodes "$home" "$project" 2 120
        echo "$project"
    fi
}

# e2e_memory_report NAME_PREFIX: "N containers, mean M MiB, max X MiB" over the running
# containers whose name starts with NAME_PREFIX (docker stats, one sample).
e2e_memory_report() {
    docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' |
        awk -v prefix="$1" 'index($1, prefix) == 1 {
            unit = $2; gsub(/[0-9.]/, "", unit); value = $2 + 0
            if (unit == "GiB") value *= 1024; if (unit == "KiB") value /= 1024; if (unit == "B") value /= 1048576
            n++; total += value; if (value > max) max = value
        } END { if (n) printf "%d containers, mean %.0f MiB, max %.0f MiB", n, total / n, max }'
}

# e2e_host_ip: the address other hosts reach this one by: its own source address toward the
# outside (never a loopback address, which inside a container would be the container).
e2e_host_ip() {
    local ip
    ip="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')"
    [ -n "$ip" ] || ip="$(hostname -I | awk '{print $1}')"
    [ -n "$ip" ] || e2e_fail "cannot tell this host's address"
    echo "$ip"
}
