#!/usr/bin/env bash
# Run each substitute image the way the official one is run and check it serves.
#
# Checks what the stacks rely on and a plain `docker run IMAGE --version` does not show:
# default commands really serve on their port; nginx under a read-only root with
# tmpfs caches; haproxy as uid 99 binding :80 (unprivileged-port sysctl, all caps
# dropped) and reloading on SIGUSR2; httpd with official-style LoadModule lines and a
# graceful reload; caddy refusing to start with all capabilities dropped, as the
# official image does; traefik's `healthcheck --ping`; certbot's shell and openssl.
#
# Usage: bash tests/infra/smoke-images.sh      (after tests/images/build.py; `make images`
# runs both). STACKGEN_TEST_IMAGE_TAG picks the tag checked, as for build.py.
# Requests go only to 127.0.0.1 (random published ports) and to these containers.
set -euo pipefail
# No `grep -q` in a pipe: it exits at the first match, the writer then dies of SIGPIPE and
# pipefail turns a found match into a failure (seen with `haproxy -vv`). grep reads all.

readonly PREFIX="stackgen-smoke-$$"
readonly TAG="${STACKGEN_TEST_IMAGE_TAG:-local}"
WORK="$(mktemp -d)"
readonly WORK
FAILURES=0

say() { printf '[smoke] %s\n' "$*" >&2; }
pass() { say "ok   $*"; }
fail() { say "FAIL $*"; FAILURES=$((FAILURES + 1)); }

cleanup() {
    local ids=()
    mapfile -t ids < <(docker ps -aq --filter "name=^${PREFIX}-")
    ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME IMAGE [docker run options...] -- [command...]: detached, port 80 on loopback.
start() {
    local name="$1" image="$2"
    shift 2
    local opts=()
    while (($#)) && [[ "$1" != "--" ]]; do opts+=("$1"); shift; done
    (($#)) && shift
    docker run -d --name "$PREFIX-$name" -p 127.0.0.1::80 "${opts[@]}" "$image" "$@" >/dev/null
}

# fetch NAME PATH: body of http://127.0.0.1:<published 80>/PATH, retried for ~10 s.
fetch() {
    local port tries=0
    port="$(docker port "$PREFIX-$1" 80/tcp | head -n 1 | sed 's/.*://')"
    until curl -fsS --noproxy '*' --max-time 2 "http://127.0.0.1:$port/$2" 2>/dev/null; do
        tries=$((tries + 1))
        ((tries < 40)) || return 1
        sleep 0.25
    done
}

logs() { docker logs "$PREFIX-$1" 2>&1 | tail -n 15 >&2; }

smoke_nginx() {
    start nginx "stackgen-test/nginx:$TAG" --read-only --tmpfs /var/cache/nginx --tmpfs /run
    if fetch nginx "" | grep "Welcome to nginx" >/dev/null; then pass "nginx: default page, read-only root"
    else fail "nginx: default page"; logs nginx; fi
    if docker exec "$PREFIX-nginx" nginx -s reload 2>/dev/null; then pass "nginx: reload"
    else fail "nginx: reload"; fi
}

smoke_haproxy() {
    mkdir -p "$WORK/haproxy"
    cat >"$WORK/haproxy/haproxy.cfg" <<'EOF'
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind :80
    http-request return status 200 content-type text/plain string "haproxy-ok"
EOF
    start haproxy "stackgen-test/haproxy:$TAG" --read-only --cap-drop ALL \
        --security-opt no-new-privileges --sysctl net.ipv4.ip_unprivileged_port_start=0 \
        -v "$WORK/haproxy:/usr/local/etc/haproxy:ro"
    if fetch haproxy "" | grep haproxy-ok >/dev/null; then pass "haproxy: serves :80 as non-root"
    else fail "haproxy: serve"; logs haproxy; fi
    if [[ "$(docker exec "$PREFIX-haproxy" id -u)" == 99 ]]; then pass "haproxy: uid 99"
    else fail "haproxy: uid is not 99"; fi
    docker kill -s USR2 "$PREFIX-haproxy" >/dev/null
    sleep 1
    if fetch haproxy "" | grep haproxy-ok >/dev/null; then pass "haproxy: master-worker reload (SIGUSR2)"
    else fail "haproxy: reload"; logs haproxy; fi
}

smoke_httpd() {
    mkdir -p "$WORK/httpd"
    # The default config with the modules a proxy config loads, official style.
    docker run --rm "stackgen-test/httpd:$TAG" cat conf/httpd.conf \
        | sed -E 's/^#(LoadModule (proxy|proxy_http|proxy_wstunnel|ssl|http2|rewrite|socache_shmcb|logio)_module )/\1/' \
            >"$WORK/httpd/httpd.conf"
    printf 'ServerName localhost\nProxyPass /proxied/ http://127.0.0.1:80/\n' >>"$WORK/httpd/httpd.conf"
    start httpd "stackgen-test/httpd:$TAG" --read-only --tmpfs /usr/local/apache2/logs \
        -v "$WORK/httpd/httpd.conf:/usr/local/apache2/conf/httpd.conf:ro"
    if fetch httpd "proxied/" | grep "It works" >/dev/null; then pass "httpd: proxy modules, read-only root"
    else fail "httpd: serve through mod_proxy"; logs httpd; fi
    if docker exec "$PREFIX-httpd" httpd -k graceful && sleep 1 && fetch httpd "" >/dev/null; then
        pass "httpd: graceful reload"
    else fail "httpd: graceful reload"; logs httpd; fi
}

smoke_caddy() {
    start caddy "stackgen-test/caddy:$TAG"
    if fetch caddy "" | grep "Caddy works" >/dev/null; then pass "caddy: default Caddyfile"
    else fail "caddy: default Caddyfile"; logs caddy; fi
    if docker run --rm --cap-drop ALL "stackgen-test/caddy:$TAG" caddy version >/dev/null 2>&1; then
        fail "caddy: started with all capabilities dropped (the official image cannot)"
    else pass "caddy: needs NET_BIND_SERVICE like the official image"; fi
}

smoke_traefik() {
    mkdir -p "$WORK/traefik"
    printf '[entryPoints.web]\n  address = ":80"\n[ping]\n' >"$WORK/traefik/traefik.toml"
    start traefik "stackgen-test/traefik:$TAG" -v "$WORK/traefik:/etc/traefik:ro"
    local tries=0
    until docker exec "$PREFIX-traefik" traefik healthcheck --ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        ((tries < 40)) || break
        sleep 0.25
    done
    if ((tries < 40)); then pass "traefik: healthcheck --ping"
    else fail "traefik: healthcheck"; logs traefik; fi
}

smoke_certbot() {
    if docker run --rm --entrypoint sh "stackgen-test/certbot:$TAG" -c \
        'command -v openssl >/dev/null && certbot --version' >/dev/null 2>&1; then
        pass "certbot: sh, openssl, certbot"
    else fail "certbot: sh/openssl/certbot"; fi
    if docker run --rm "stackgen-test/certbot-dns:$TAG" plugins --text 2>/dev/null \
        | grep '^\* dns-rfc2136$' >/dev/null; then pass "certbot-dns: the dns-rfc2136 plugin"
    else fail "certbot-dns: no dns-rfc2136 plugin"; fi
}

# HTTP/3 is rendered for nginx and HAProxy because their official builds have QUIC: the
# substitutes must have it too, or the matrix proves nothing about it.
smoke_quic() {
    if docker run --rm "stackgen-test/nginx:$TAG" nginx -V 2>&1 | grep -- --with-http_v3_module >/dev/null
    then pass "nginx: built with http_v3_module"
    else fail "nginx: no http_v3_module"; fi
    if docker run --rm "stackgen-test/haproxy:$TAG" haproxy -vv 2>&1 | grep -- "+QUIC " >/dev/null
    then pass "haproxy: built with QUIC"
    else fail "haproxy: no QUIC"; fi
}

main() {
    smoke_nginx
    smoke_haproxy
    smoke_httpd
    smoke_caddy
    smoke_traefik
    smoke_certbot
    smoke_quic
    if ((FAILURES)); then
        say "$FAILURES check(s) failed"
        exit 1
    fi
    say "all substitute images behave"
}

main "$@"
