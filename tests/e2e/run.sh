#!/usr/bin/env bash
# flowerbed's live end-to-end run (`make e2e`): a real Docker engine, real Flower images,
# real federated runs. Fails loudly when it cannot run; never passes having run nothing.
#
# Usage: tests/e2e/run.sh [SCENARIO...]     (names or name prefixes from tests/e2e/scenarios)
# Environment:
#   E2E_FLWR_VERSIONS  Flower releases to exercise, space-separated (default: $FLWR_VERSION
#                      or the newest in the profile table). A scenario's "# flwr: GLOB..."
#                      header limits its releases; "newest" and "oldest" there stand for
#                      the table's newest and oldest release series (a newest of 1.42.0
#                      is "1.42.*").
#   E2E_IMAGE_REPO     local image repository (default flowerbed-local)
#   E2E_SCENARIOS      scenario names or prefixes, space-separated, if none are given as args
#   E2E_KEEP=1         keep what a failed scenario made, for a look
#   E2E_KEEP_ENGINE=1  leave a dockerd this run started running afterwards
#   FLOWERBED          a flowerbed binary to use instead of building target/debug/flowerbed
# Steps: Docker engine (scripts/docker-engine.sh), Compose v2, images per release
# (scripts/build-flower-images.sh, cached), a host flwr venv per release
# (scripts/flwr-venv.sh), flowerbed when a scenario needs it, then each scenario.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
scenario_dir="tests/e2e/scenarios"
out_dir="$root/target/e2e"
log_dir="$out_dir/logs"
timings="$out_dir/timings.txt"
mkdir -p "$log_dir"
: >"$timings"

# The profile table's releases, oldest first (read from the source: no build needed), so a
# new release needs no edit here or in the scenarios that follow the newest.
releases_text="$(scripts/flower-releases.sh)"
mapfile -t releases <<<"$releases_text"
oldest="${releases[0]}"
newest="${releases[-1]}"
if [ -z "$newest" ]; then
    echo "e2e: FAILED: scripts/flower-releases.sh printed no release" >&2
    exit 1
fi
read -r -a versions <<<"${E2E_FLWR_VERSIONS:-${FLWR_VERSION:-$newest}}"
export E2E_IMAGE_REPO="${E2E_IMAGE_REPO:-flowerbed-local}"

say() { echo "e2e: $*" >&2; }
banner() {
    echo "==================================================================" >&2
    echo "e2e: $*" >&2
    echo "==================================================================" >&2
}

phase_name=""
phase_started=0
phase() {
    phase_end
    phase_name="$*"
    phase_started=$SECONDS
    say "== $phase_name"
}
phase_end() {
    if [ -n "$phase_name" ]; then
        printf '%5ss  %s\n' "$((SECONDS - phase_started))" "$phase_name" | tee -a "$timings" >&2
        phase_name=""
    fi
}

engine_up=0
finish() {
    local status=$?
    phase_end
    if [ "$engine_up" -eq 1 ] && [ "${E2E_KEEP_ENGINE:-0}" != 1 ]; then
        scripts/docker-engine.sh stop || true
    fi
    exit "$status"
}
trap finish EXIT

# --- which scenarios -------------------------------------------------------------------
read -r -a wanted <<<"${*:-${E2E_SCENARIOS:-}}"
scenarios=()
for file in "$scenario_dir"/*.sh; do
    [ -e "$file" ] || continue
    name="$(basename "$file" .sh)"
    if [ "${#wanted[@]}" -eq 0 ]; then
        scenarios+=("$file")
        continue
    fi
    for want in "${wanted[@]}"; do
        case "$name" in "$want"*) scenarios+=("$file"); break ;; esac
    done
done
if [ "${#scenarios[@]}" -eq 0 ]; then
    banner "FAILED: no scenario matches '${wanted[*]:-}' in $scenario_dir"
    exit 1
fi

# A scenario's header: "# flwr: GLOB..." (releases it applies to), "# needs: flowerbed".
header_value() { sed -n "s/^# $2: //p" "$1" | sed -n 1p; }
# A header word as a glob: "newest"/"oldest" are that release's series (its patch releases
# too, as a pinned "1.42.*" was), anything else a glob as written.
release_glob() {
    case "$1" in
        newest) echo "${newest%.*}.*" ;;
        oldest) echo "${oldest%.*}.*" ;;
        *) echo "$1" ;;
    esac
}
applies_to() {
    local file="$1" version="$2" globs glob
    read -r -a globs <<<"$(header_value "$file" flwr)"
    [ "${#globs[@]}" -gt 0 ] || return 0
    for glob in "${globs[@]}"; do
        glob="$(release_glob "$glob")"
        # shellcheck disable=SC2053  # glob match on purpose
        [[ "$version" == $glob ]] && return 0
    done
    return 1
}
# A misspelt symbolic name would match no release and drop the scenario silently.
for file in "${scenarios[@]}"; do
    read -r -a globs <<<"$(header_value "$file" flwr)"
    [ "${#globs[@]}" -gt 0 ] || continue
    for glob in "${globs[@]}"; do
        case "$glob" in
            newest | oldest | [0-9]* | '*') ;;
            *)
                banner "FAILED: ${file#"$root"/}: '# flwr: $glob' is neither a release glob nor newest/oldest"
                exit 1
                ;;
        esac
    done
done

# --- engine and Compose --------------------------------------------------------------------
phase "Docker engine"
if ! scripts/docker-engine.sh start; then
    banner "FAILED: no Docker engine could be had, so no end-to-end scenario ran (CI=${CI:-unset}).
    Start a Docker engine (or run as root so Debian's docker.io can be installed and started)."
    exit 1
fi
engine_up=1
if ! docker info >/dev/null 2>&1; then
    banner "FAILED: the Docker engine does not answer 'docker info'"
    exit 1
fi
docker_version="$(docker version --format '{{.Server.Version}}')"

phase "Compose v2"
compose_bin="$(scripts/docker-engine.sh compose)"
PATH="$(dirname "$compose_bin"):$PATH"
export PATH
compose_version="$(docker-compose version --short 2>/dev/null || echo '?')"

# --- flowerbed, if a scenario calls it -----------------------------------------------------
for file in "${scenarios[@]}"; do
    if [ "$(header_value "$file" needs)" = flowerbed ] && [ -z "${FLOWERBED:-}" ]; then
        # The debug build: `make test` has built it already in CI, and speed does not matter.
        phase "flowerbed (cargo build)"
        cargo build --locked
        export FLOWERBED="$root/target/debug/flowerbed"
        break
    fi
done
[ -z "${FLOWERBED:-}" ] || export FLOWERBED

# --- per Flower release: images, host flwr, scenarios ----------------------------------------
passed=0
failed=0
results=()
for version in "${versions[@]}"; do
    selected=()
    for file in "${scenarios[@]}"; do
        applies_to "$file" "$version" && selected+=("$file")
    done
    if [ "${#selected[@]}" -eq 0 ]; then
        say "no selected scenario applies to Flower $version; skipping its images"
        continue
    fi

    phase "Flower $version images ($E2E_IMAGE_REPO)"
    scripts/build-flower-images.sh "$version" "$E2E_IMAGE_REPO"
    phase "Flower $version host venv (flwr CLI)"
    E2E_FLWR_VENV="$(scripts/flwr-venv.sh "$version")"
    export E2E_FLWR_VENV FLWR_VERSION="$version"

    for file in "${selected[@]}"; do
        name="$(basename "$file" .sh)"
        phase "scenario $name (Flower $version)"
        log="$log_dir/$version-$name.log"
        # pipefail: the scenario's own status decides, not tee's.
        if timeout --kill-after=30 "${E2E_SCENARIO_TIMEOUT:-900}" bash "$file" 2>&1 | tee "$log" >&2; then
            passed=$((passed + 1))
            results+=("PASS  $name (Flower $version, $((SECONDS - phase_started))s)")
        else
            failed=$((failed + 1))
            results+=("FAIL  $name (Flower $version, $((SECONDS - phase_started))s; log: ${log#"$root"/})")
        fi
    done
done
phase_end

echo >&2
say "Docker $docker_version, Compose $compose_version, Flower ${versions[*]}"
say "timings (also in ${timings#"$root"/}):"
sed 's/^/    /' "$timings" >&2
for line in "${results[@]}"; do say "$line"; done
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
    banner "FAILED: no scenario ran (releases '${versions[*]}' matched none)"
    exit 1
fi
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
