#!/usr/bin/env bash
# Build local Flower images without any container registry, like the official ones in the
# ways flowerbed cares about: user `app` UID/GID 49999, home and workdir /app, Flower in a
# venv at /python/venv, one image per component with that component as ENTRYPOINT.
#
# Usage: scripts/build-flower-images.sh VERSION [REPO]
#   Tags REPO/base:VERSION and REPO/COMPONENT:VERSION (REPO default: flowerbed-local), so
#   flowerbed's `--image-repo flowerbed-local` selects them. Components:
#     1.13.x:  superlink supernode serverapp clientapp   (the seed-era process mode)
#     newer:   superlink supernode superexec
#   Skips the build when every image for VERSION already exists (FORCE=1 rebuilds).
#   REPO/debian-python3:bookworm caches the Debian layer shared by all releases.
#
# How: a minbase Debian bookworm root filesystem with python3 (mmdebstrap, from the host's
# Debian package sources), Flower's wheels downloaded with the host's pip from PyPI,
# installed offline in a chroot, `docker import`, then tiny `FROM base` images (legacy
# builder, no pull). Needs root, a Docker engine, python3 with pip; installs mmdebstrap.
# The test app needs only numpy, which ships with flwr, so nothing else is baked in.
set -euo pipefail

version="${1:?usage: $0 VERSION [REPO]}"
repo="${2:-flowerbed-local}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${FLOWERBED_E2E_WORK:-$root/target/e2e}/image-build/$version"
suite=bookworm

say() { echo "build-flower-images: $*" >&2; }
die() { say "error: $*"; exit 1; }

case "$version" in
    1.13.*) components=(superlink supernode serverapp clientapp) ;;
    *) components=(superlink supernode superexec) ;;
esac
image_list="$repo/{base,$(IFS=,; echo "${components[*]}")}:$version"

entrypoint_of() {
    case "$1" in
        superlink) echo flower-superlink ;;
        supernode) echo flower-supernode ;;
        superexec) echo flower-superexec ;;
        serverapp) echo flwr-serverapp ;;
        clientapp) echo flwr-clientapp ;;
    esac
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

all_present=1
for component in base "${components[@]}"; do
    image_exists "$repo/$component:$version" || all_present=0
done
if [ "$all_present" -eq 1 ] && [ "${FORCE:-0}" != 1 ]; then
    say "$image_list exist; nothing to build"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the root filesystem needs root (mmdebstrap, chroot)"
docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/docker-engine.sh start"
debian_image="$repo/debian-python3:$suite"
if ! image_exists "$debian_image" && ! command -v mmdebstrap >/dev/null 2>&1; then
    say "installing mmdebstrap (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

step_started=0
step() { step_started=$SECONDS; say "$*"; }
step_done() { say "  done in $((SECONDS - step_started))s"; }

# Images these tags point at now; a rebuild leaves them untagged, and they go at the end.
replaced_ids=()
for component in "${components[@]}" base; do
    if old_id="$(docker image inspect -f '{{.Id}}' "$repo/$component:$version" 2>/dev/null)"; then
        replaced_ids+=("$old_id")
    fi
done

rm -rf "$work"
mkdir -p "$work"
rootfs="$work/rootfs"
trap 'rm -rf "$work"' EXIT

# The Debian + python3 layer is the same for every Flower release: make it once with
# mmdebstrap, keep it as an image, and start later builds from an export of it.
if image_exists "$debian_image" && [ "${FORCE:-0}" != 1 ]; then
    step "root filesystem from the cached $debian_image"
    mkdir -p "$rootfs"
    container_id="$(docker create "$debian_image" /bin/true)"
    docker export "$container_id" | tar -C "$rootfs" -x --numeric-owner
    docker rm "$container_id" >/dev/null
    rm -f "$rootfs/.dockerenv"
    step_done
else
    # The host's own Debian sources (a mirror or proxy it is set up for); mmdebstrap pastes
    # a sources file given as MIRROR into the chroot. Without one, its default applies.
    mirror=()
    for sources in "${FLOWERBED_DEBIAN_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -n "$sources" ] && [ -s "$sources" ] && grep -q "$suite" "$sources"; then
            mirror=("$sources")
            break
        fi
    done
    step "Debian $suite minbase root filesystem with python3 (mmdebstrap)"
    mmdebstrap --quiet --mode=root --variant=minbase \
        --include=python3,python3-venv,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$suite" "$rootfs" "${mirror[@]}"
    rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*
    tar -C "$rootfs" --numeric-owner -c . |
        docker import --change "LABEL org.flowerbed.purpose=flower-image-build" - "$debian_image" >/dev/null
    step_done
fi

py_version="$(chroot "$rootfs" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
py_tag="cp${py_version/./}"
arch="$(uname -m)"
# Captured first: `ldd | head` under pipefail fails when head closes the pipe early.
ldd_version="$(chroot "$rootfs" ldd --version)"
glibc_minor="$(sed -nE '1s/.* 2\.([0-9]+)$/\1/p' <<<"$ldd_version")"

requirements=("flwr==$version")
case "$version" in
    # 1.13's typer-based CLI breaks with click >= 8.2.
    1.13.*) requirements+=('click<8.2') ;;
esac

step "downloading ${requirements[*]} wheels for Python $py_version ($arch) from PyPI"
# Wheels only, for the rootfs's Python and glibc rather than the host's.
platforms=()
for minor in $(seq 17 "$glibc_minor"); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch")
mkdir -p "$rootfs/wheels"
# The host's pip (with its PyPI settings); a Debian python3 without pip gets one in a venv.
pip=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$work/pip-venv"
    pip=("$work/pip-venv/bin/python" -m pip)
fi
"${pip[@]}" download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$py_version" --implementation cp --abi "$py_tag" --abi abi3 --abi none \
    "${platforms[@]}" --dest "$rootfs/wheels" "${requirements[@]}"
say "  $(find "$rootfs/wheels" -name '*.whl' | wc -l) wheels"
step_done

step "offline install into /python/venv and user app 49999:49999 (chroot)"
# A clean environment: the host's pip settings (PIP_*) mean nothing inside the rootfs.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$rootfs" /bin/sh -euc '
    python3 -m venv /python/venv
    /python/venv/bin/pip install --quiet --disable-pip-version-check --no-index \
        --find-links /wheels "$@"
    groupadd --gid 49999 app
    useradd --uid 49999 --gid 49999 --home-dir /app --create-home --shell /bin/sh app
    /python/venv/bin/python -c "import flwr, numpy"
' sh "${requirements[@]}"
rm -rf "$rootfs/wheels" "$rootfs/root/.cache" "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*
installed="$(chroot "$rootfs" /python/venv/bin/pip show flwr | sed -n 's/^Version: //p')"
[ "$installed" = "$version" ] || die "flwr $installed got installed, not $version"
step_done

step "docker import $repo/base:$version"
tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'USER app' \
    --change 'WORKDIR /app' \
    --change 'ENV PATH=/python/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change "LABEL org.flowerbed.flwr-version=$version" \
    - "$repo/base:$version" >/dev/null
step_done

step "component images: ${components[*]}"
for component in "${components[@]}"; do
    image="$repo/$component:$version"
    # Legacy builder with no context and no pull: nothing leaves this machine.
    printf 'FROM %s\nENTRYPOINT ["%s"]\n' "$repo/base:$version" "$(entrypoint_of "$component")" |
        DOCKER_BUILDKIT=0 docker build --quiet --pull=false -t "$image" - >"$work/build.log" 2>&1 ||
        { cat "$work/build.log" >&2; die "docker build of $image failed"; }
    # Prove the image runs as app in a writable /app and its entrypoint answers --help.
    docker run --rm --entrypoint sh "$image" -c \
        '[ "$(id -u):$(id -g)" = 49999:49999 ] && [ "$PWD" = /app ] && [ -w /app ]' ||
        die "$image does not run as 49999:49999 in a writable /app"
    docker run --rm "$image" --help >"$work/help.log" 2>&1 ||
        { cat "$work/help.log" >&2; die "$image: its entrypoint fails on --help"; }
done
step_done
for old_id in "${replaced_ids[@]}"; do
    if [ -z "$(docker image inspect -f '{{join .RepoTags ","}}' "$old_id" 2>/dev/null)" ]; then
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
done
say "built $image_list"
