#!/usr/bin/env bash
# `make demo`: a real stack on this machine, on local defaults (ports 80/443), with a
# certificate issued by a local Pebble ACME CA through the real HTTP-01 challenge, in front
# of the Jellyfin stand-in (no registry ships Jellyfin, and nothing can be pulled here).
# TLS=dns: DNS-01 instead, for a wildcard (*.home.arpa and home.arpa), through a local bind9
# that Pebble resolves with; the stack then publishes no port 80.
# TARGET=swarm: the same stack deployed with `docker stack deploy` on this engine as a
# single-node swarm (initialised on the default route's address when it is in none),
# labelled as both the edge and the media node.
# TARGET=edge-home: both sides of an edge-home pair on this engine (`demo/edge`, `demo/home`):
# the proxy at the edge, the stand-in at home behind the engine's outbound-only NAT, joined
# by userspace WireGuard that home dials; home publishes no port.
# ACCESS=gate: the token gate on (`access.gate.mode = "token"`, docs/access.md; on edge-home
# `init` turns it on by default and the demo closes images too), its service run
# from the test suite's Debian base image (python3), as `access.gate.image` allows.
# The stack is left running; `make demo-down` removes it.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROXY="${PROXY:-traefik}"
SUBPATH="${SUBPATH:-}"
HTTP2="${HTTP2:-1}"
HTTP3="${HTTP3:-0}"
# IPV6=1: dual-stack (`init --ipv6`); engine.sh gives the engine ip6tables, which keeps
# IPv6 clients' addresses.
IPV6="${IPV6:-0}"
DEMO_DIR="${DEMO_DIR:-demo}"
DOMAIN="${DOMAIN:-jellyfin.home.arpa}"
TLS="${TLS:-http}"
TARGET="${TARGET:-compose}"
ACCESS="${ACCESS:-}"
PY=.venv/bin/python
STACKGEN=.venv/bin/stackgen
STATE="$PWD/.cache/demo-pebble"
DNS_STATE="$PWD/.cache/demo-bind9"
case "$TLS" in http | dns) ;; *) echo "demo: TLS=$TLS: use http or dns" >&2; exit 2 ;; esac
case "$TARGET" in compose | swarm | edge-home) ;; *) echo "demo: TARGET=$TARGET: use compose, swarm or edge-home" >&2; exit 2 ;; esac
case "$ACCESS" in "" | gate) ;; *) echo "demo: ACCESS=$ACCESS: use gate" >&2; exit 2 ;; esac

bash tests/infra/engine.sh
echo "demo: building local images (cached by content)" >&2
IMAGES=$($PY tests/images/build.py --json)
image() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$IMAGES"; }
proxy_image=$(image "$([ "$PROXY" = apache ] && echo httpd || echo "$PROXY")")

# A previous demo: remove it first (its certificate chains to an older Pebble root).
if [ -f "$DEMO_DIR/stackgen.toml" ]; then
  $STACKGEN down --dir "$DEMO_DIR" >&2 || true
  rm -rf "$DEMO_DIR"
fi
for side in edge home; do
  if [ -f "$DEMO_DIR/$side/stackgen.toml" ]; then
    $STACKGEN down --dir "$DEMO_DIR" --side "$side" >&2 || true
  fi
done
rm -rf "$DEMO_DIR"

pebble_args=(start --state "$STATE" --http-port 80 --tls-port 443)
if [ "$TLS" = dns ]; then
  zone=${DOMAIN#*.}
  echo "demo: starting bind9 (authoritative for $zone, TSIG-signed updates)" >&2
  BIND=$($PY -m tests.bind9 start --state "$DNS_STATE" --zone "$zone")
  bind() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$BIND"; }
  pebble_args+=(--dns-server "$(bind host_address)")
fi
echo "demo: starting Pebble (ACME CA) for ports 80/443" >&2
PEBBLE=$($PY -m stackgen.testing.pebble "${pebble_args[@]}")
field() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$PEBBLE"; }

args=(init "$PROXY" --domain "$DOMAIN" --email "admin@$DOMAIN" --dir "$DEMO_DIR"
      --ca-url "$(field directory_url)" --ca-bundle "$(field listener_ca_file)"
      --trust-bundle "$(field issuer_root_file)"
      --image "jellyfin=$(image jellyfin-standin)" --image "$PROXY=$proxy_image"
      --image "fail2ban=$(image fail2ban)"
      --image "certbot=$(image "$([ "$TLS" = dns ] && echo certbot-dns || echo certbot)")")
[ -n "$SUBPATH" ] && args+=(--subpath "$SUBPATH")
if [ "$TLS" = dns ]; then
  # The TSIG key goes to .env (0600; on a swarm, secrets/NAME, handed over as Swarm
  # secrets) through --dns-credential, never to stackgen.toml.
  args+=(--tls acme-dns --dns-provider rfc2136 --wildcard
         --dns-resolver "$(bind container_address)" --dns-propagation-seconds 0
         --dns-credential "RFC2136_NAMESERVER=$(bind container_address)"
         --dns-credential "RFC2136_TSIG_KEY=$(bind key_name)."
         --dns-credential "RFC2136_TSIG_SECRET=$(bind tsig_secret)"
         --dns-credential "RFC2136_TSIG_ALGORITHM=$(bind algorithm).")
fi
if [ "$TARGET" = swarm ]; then
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    dev=$(ip -4 route show default | awk '{print $5; exit}')
    address=$(ip -4 -o addr show dev "$dev" | awk '{split($4, a, "/"); print a[1]; exit}')
    echo "demo: making this engine a single-node swarm (docker swarm init on $address)" >&2
    docker swarm init --advertise-addr "$address" >/dev/null
  fi
  node=$(docker info --format '{{.Swarm.NodeID}}')
  docker node update --label-add stackgen.role.edge=true --label-add stackgen.role.media=true \
    "$node" >/dev/null
  # Jellyfin on the node's host network (the default): the proxy reaches it at this address,
  # and connects from docker_gwbridge (made here as the engine would, if no task made it yet).
  if ! docker network inspect docker_gwbridge >/dev/null 2>&1; then
    docker network create --opt com.docker.network.bridge.name=docker_gwbridge \
      --opt com.docker.network.bridge.enable_icc=false \
      --opt com.docker.network.bridge.enable_ip_masquerade=true docker_gwbridge >/dev/null
  fi
  gateway=$(docker network inspect docker_gwbridge --format '{{(index .IPAM.Config 0).Subnet}}')
  args+=(--target swarm --allow-plain-media-link --media-address "$(docker node inspect "$node" --format '{{.Status.Addr}}')"
         --gateway-subnet "$gateway")
fi
if [ "$TARGET" = edge-home ]; then
  # The userspace WireGuard image is built on demand (cached by content).
  wireguard=$($PY tests/images/build.py --json wireguard | $PY -c 'import json,sys; print(json.load(sys.stdin)["wireguard"])')
  # Home dials the edge's published WireGuard port at the host's address on home's own
  # network (its pinned gateway), as it would dial the edge server's public address.
  home_gateway=$($PY -c 'import ipaddress
from stackgen.models import NetworkConfig
n = NetworkConfig().subnet
print(ipaddress.IPv4Network((int(n.network_address) + n.num_addresses, n.prefixlen)).network_address + 1)')
  args+=(--target edge-home --edge-host "$home_gateway" --image "wireguard=$wireguard")
fi
[ "$HTTP2" = 0 ] && args+=(--no-http2)
[ "$HTTP3" = 1 ] && args+=(--http3)
[ "$IPV6" = 1 ] && args+=(--ipv6)
$STACKGEN "${args[@]}"
# The gate's folder: the stack's, or the edge's on edge-home, where `init` turns the gate on
# by default (docs/edge-home.md).
gate_dir="$DEMO_DIR"
[ "$TARGET" = edge-home ] && gate_dir="$DEMO_DIR/edge"
if [ "$ACCESS" = gate ] || [ "$TARGET" = edge-home ]; then
  # As a user would: the [access.gate] table of stackgen.toml edited, then the stack rendered
  # again. On edge-home the images are closed too (access.gate.images = "token"): an edge
  # serves only internet clients, and the stand-in has no web client to show posters.
  $PY - "$gate_dir" "$(image debian-base)" "$TARGET" <<'PY'
import sys
from pathlib import Path

from stackgen.config_file import build_config, dump_config, load_config

folder = Path(sys.argv[1])
data = load_config(folder).model_dump(mode="json")
data["access"]["gate"] |= {"mode": "token", "image": sys.argv[2]}
if sys.argv[3] == "edge-home":
    data["access"]["gate"]["images"] = "token"
(folder / "stackgen.toml").write_text(dump_config(build_config(data, folder)))
PY
  $STACKGEN render --dir "$gate_dir" >&2
fi
if [ "$TARGET" = edge-home ]; then
  $STACKGEN up --dir "$DEMO_DIR" --side edge
  $STACKGEN up --dir "$DEMO_DIR" --side home
  # The edge's own wait for Jellyfin, now that home has dialled in.
  $STACKGEN up --dir "$DEMO_DIR" --side edge
  describe="$STACKGEN status --dir $DEMO_DIR --side edge (or --side home)"
else
  $STACKGEN up --dir "$DEMO_DIR"
  describe="$STACKGEN status --dir $DEMO_DIR --json"
fi

ca=$(field issuer_root_file)
cat <<MSG

Demo stack is up$([ "$TARGET" = swarm ] && echo " on a swarm")$([ "$TARGET" = edge-home ] && echo " as an edge-home pair (Jellyfin reached over WireGuard)"): $PROXY in front of the Jellyfin stand-in, certificate issued by Pebble$([ "$TLS" = dns ] && echo " by DNS-01 for *.${DOMAIN#*.} (no port 80)").
  URL:       https://$DOMAIN$SUBPATH/
  trust:     $ca   (Pebble's issuing root)
  try:       curl -sS --cacert $ca --resolve $DOMAIN:443:127.0.0.1 https://$DOMAIN$SUBPATH/health
$([ "$IPV6" = 1 ] && echo "  IPv6:      published on [::]:443 too; a client on another machine keeps its IPv6 address
             (from this machine, [::1] goes through docker-proxy and shows the gateway's)")
$( ([ "$ACCESS" = gate ] || [ "$TARGET" = edge-home ]) && echo "  gate:      a stream without a token is refused (401), with the stand-in's key it plays:
             curl -sS -o /dev/null -w '%{http_code} ' --cacert $ca --resolve $DOMAIN:443:127.0.0.1 https://$DOMAIN$SUBPATH/Videos/demo/stream
             ... and again with -H 'X-Emby-Token: stackgen-standin-api-key' (206/200)")
  describe:  $describe
  remove:    make demo-down
MSG
