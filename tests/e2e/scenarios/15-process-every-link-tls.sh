#!/usr/bin/env bash
# Issue 21: process isolation on the newest release with every link TLS. flowerbed's own
# quickstart gives each SuperNode a Runtime API certificate of its own and every runner
# link a superexec secret; Compose starts it, `flwr run` completes, and a probe on the
# project network shows the Runtime APIs the runners dial speak only TLS (a handshake
# verifying each service name against our CA succeeds; plain HTTP gets no answer).
# flwr: newest
# needs: flowerbed
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../lib.sh"
e2e_begin process-every-link-tls
e2e_need_flowerbed

project="$E2E_PREFIX"
work="$(e2e_tmpdir)"
deploy="$work/deploy"

e2e_step "flowerbed quickstart --isolation process (TLS, 2 SuperNodes)"
"$FLOWERBED" quickstart "$deploy" --flower-version "$FLWR_VERSION" --isolation process \
    --image-repo "$E2E_IMAGE_REPO" --project-name "$project" >/dev/null
for n in 1 2; do
    key="$deploy/supernode-runtime-certificates/supernode-$n/server.key"
    [ "$(stat -c %u:%g:%a "$key")" = 49999:49999:600 ] || e2e_fail "$key is $(stat -c %u:%g:%a "$key")"
    secret="$deploy/superexec-auth/supernode-$n/secret"
    [ "$(stat -c %s "$secret")" = 64 ] || e2e_fail "$secret is not 64 bytes"
    [ -z "$(tr -d '0-9a-f' <"$secret")" ] || e2e_fail "$secret holds more than hex digits"
done
port="$(e2e_free_port)"
sed -i "s/published: \"8000\"/published: \"$port\"/" "$deploy/compose.yaml"
sed -i "s/127\.0\.0\.1:8000\"/127.0.0.1:$port\"/" "$deploy/flwr-config.toml"
if grep -n -- '--insecure' "$deploy/compose.yaml" >&2; then
    e2e_fail "compose.yaml still has --insecure on some link"
fi

e2e_step "check is clean (no link-left-plain); Compose starts it"
rc=0
report="$("$FLOWERBED" check "$deploy" --json)" || rc=$?
[ "$rc" -eq 0 ] || e2e_fail "flowerbed check $deploy exited $rc: $report"
e2e_compose "$deploy/compose.yaml" up --detach >/dev/null 2>&1 || e2e_fail "docker-compose up failed"

e2e_step "both SuperNodes connect; flwr run completes through the TLS runner links"
flwr_home="$work/flwr-home"
mkdir -p "$flwr_home"
{
    printf '[superlink]\ndefault = "%s"\n\n' "$project"
    cat "$deploy/flwr-config.toml"
} >"$flwr_home/config.toml"
e2e_wait_supernodes "$flwr_home" "$project" 2 120
e2e_flwr_run_completes "$flwr_home" "$E2E_ROOT/tests/e2e/app" "$project" 2 300 >/dev/null

e2e_step "the Runtime APIs the runners dial speak only TLS, under their service names"
network="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' \
    "$(e2e_compose "$deploy/compose.yaml" ps -q supernode-1)" | awk '{print $1}')"
[ -n "$network" ] || e2e_fail "no network found for supernode-1"
probe='
import socket, ssl, sys
ca, targets = sys.argv[1], sys.argv[2:]
context = ssl.create_default_context(cafile=ca)
for target in targets:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            subject = dict(pair[0] for pair in tls.getpeercert()["subject"])
            name = subject.get("commonName")
            print(f"{target} TLS {tls.version()} {tls.cipher()[0]} CN={name}")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(64)
        except (socket.timeout, ConnectionResetError):
            answer = b""
        if answer.startswith(b"HTTP/"):
            sys.exit(f"{target} answered plain HTTP: {answer!r}")
        print(f"{target} refuses plain HTTP")
'
e2e_track_container "$project-probe"
out="$(docker run --rm --name "$project-probe" --network "$network" --user 49999:49999 \
    -v "$deploy/supernode-certificates:/probe:ro" --entrypoint python "$(e2e_image superexec)" \
    -c "$probe" /probe/ca.crt superlink:8000 supernode-1:9094 supernode-2:9094 2>&1)" ||
    e2e_fail "TLS probe failed: $out"
e2e_log "$out"
grep -q '^supernode-1:9094 TLS TLSv1\.[23] .* CN=supernode-1$' <<<"$out" || e2e_fail "supernode-1's Runtime API did not present its own certificate"
grep -q '^supernode-2:9094 refuses plain HTTP$' <<<"$out" || e2e_fail "supernode-2's Runtime API answered plain HTTP"

e2e_step "the runners dial with --root-certificates and the shared secret"
for service in superexec-serverapp superexec-clientapp-1 superexec-clientapp-2; do
    args="$(docker inspect -f '{{join .Args " "}}' "$(e2e_compose "$deploy/compose.yaml" ps -q "$service")")"
    case "$args" in
        *--insecure*) e2e_fail "$service runs with --insecure: $args" ;;
        *--root-certificates*--superexec-auth-secret-file*) ;;
        *) e2e_fail "$service lacks --root-certificates or the secret: $args" ;;
    esac
done
logs="$(e2e_compose "$deploy/compose.yaml" logs --no-color supernode-1 superlink 2>&1)"
grep -q "SuperExec authentication is experimental" <<<"$logs" ||
    e2e_fail "neither the SuperLink nor supernode-1 logged that SuperExec authentication is on"

e2e_step "down; release; the folder can be deleted"
e2e_compose "$deploy/compose.yaml" down --volumes >/dev/null 2>&1
for owned in superlink-certificates superexec-auth/superlink superexec-auth/supernode-1 \
    superexec-auth/supernode-2 supernode-runtime-certificates/supernode-1 \
    supernode-runtime-certificates/supernode-2; do
    "$FLOWERBED" release "$deploy/$owned" >/dev/null
done
rm -rf "$deploy"

e2e_end
