#!/usr/bin/env bash
# Print the Flower releases flowerbed supports, oldest first, one a line, read from the one
# table that defines them (PROFILES in src/deploy/profile.rs). The last line is the newest:
# the default of `--flower-version` and the release the tests pin.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sed -n '/^pub const PROFILES/,/^];/s/^ *version: "\([^"]*\)",$/\1/p' "$root/src/deploy/profile.rs"
