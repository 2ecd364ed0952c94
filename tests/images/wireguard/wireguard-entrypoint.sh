#!/bin/bash
# Bring wg0 up from /etc/wireguard/wg0.conf with wg-quick (wireguard-go when the kernel has
# no WireGuard), take it down again on SIGTERM/SIGINT, and exit if wireguard-go dies so the
# engine's restart policy sees the failure.
set -euo pipefail
CONF=/etc/wireguard/wg0.conf

down() {
    wg-quick down "$CONF" || true
    exit 0
}
trap down TERM INT QUIT

wg-quick up "$CONF"
while [ -S /var/run/wireguard/wg0.sock ]; do
    sleep 2 &
    wait $! || true
done
echo "wireguard-entrypoint: wireguard-go for wg0 is gone" >&2
exit 1
