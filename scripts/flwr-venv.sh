#!/usr/bin/env bash
# Make sure a project-local venv with a pinned Flower release exists; print its path.
# Usage: scripts/flwr-venv.sh VERSION     (default: the release flowerbed's tests pin)
# The venv lives under .venv/flwr-VERSION and is reused once it works.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${1:-$("$root/scripts/flower-releases.sh" | tail -n 1)}"
venv="$root/.venv/flwr-$version"
if [ -x "$venv/bin/flower-superlink" ] && "$venv/bin/python" -c 'import flwr' 2>/dev/null; then
    echo "$venv"
    exit 0
fi
echo "flwr-venv: installing flwr==$version into .venv/flwr-$version (once; cached afterwards)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "flwr==$version" >&2
case "$version" in
    # 1.13's CLI breaks with click >= 8.2.
    1.13.*) "$venv/bin/pip" install --quiet --disable-pip-version-check 'click<8.2' >&2 ;;
esac
"$venv/bin/python" -c 'import flwr' >&2
echo "$venv"
