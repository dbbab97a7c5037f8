#!/usr/bin/env bash
# `flowerbed doctor` against the real engine: the server version, the negotiated API
# version and the security options it reports are the engine's own, in text and JSON, and
# the local Flower images are listed with the user they run as.
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin doctor
e2e_need_flowerbed

e2e_step "doctor --json reports what the engine says about itself"
report="$("$FLOWERBED" doctor --json)" || e2e_fail "doctor exited non-zero: $report"
version="$(docker version --format '{{.Server.Version}}')"
api="$(docker version --format '{{.Server.APIVersion}}')"
options="$(docker info --format '{{join .SecurityOptions ","}}')"
[ "$(e2e_json 'd["daemon"]["server_version"]' <<<"$report")" = "$version" ] || e2e_fail "server version differs: $report"
[ "$(e2e_json 'd["daemon"]["api_version"]' <<<"$report")" = "$api" ] || e2e_fail "API version differs from $api: $report"
[ "$(e2e_json '",".join(d["daemon"]["security_options"])' <<<"$report")" = "$options" ] || e2e_fail "security options differ from $options: $report"
image="$(e2e_image superlink)"
user="$(e2e_json "[i['user'] for i in d['daemon']['images'] if '$image' in i['tags']][0]" <<<"$report")"
[ "$user" = "$(docker image inspect -f '{{.Config.User}}' "$image")" ] || e2e_fail "image user differs: $user"
e2e_log "   Docker $version, API $api, security options: $options; $image runs as $user"

e2e_step "doctor in text says the same"
text="$("$FLOWERBED" doctor --color never)" || e2e_fail "doctor (text) exited non-zero: $text"
grep -q "Docker $version (API $api negotiated)" <<<"$text" || e2e_fail "text lacks the version line: $text"
grep -q "$image runs as $user" <<<"$text" || e2e_fail "text lacks the image line: $text"

e2e_end
