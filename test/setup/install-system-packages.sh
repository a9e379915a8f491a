#!/usr/bin/env bash
# Debian packages the tests and the bench harness use: Pebble (ACME test CA), Chromium (browser flow),
# nginx (bench peer), caddy (bench peer, npm run bench only), wrk and h2load (load generators), openssl (test PKI),
# systemd and python3 (the service unit and its notifications), redis-server (shared store) and haproxy (L4 load
# balancer in front of several instances). Installs only what is missing.
set -euo pipefail
need=()
command -v pebble >/dev/null || need+=(pebble)
command -v chromium >/dev/null || need+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v caddy >/dev/null || need+=(caddy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
command -v systemd-analyze >/dev/null || need+=(systemd)     # the service unit's checks, systemd-notify
command -v python3 >/dev/null || need+=(python3-minimal)     # an AF_UNIX datagram socket standing in for systemd's
command -v redis-server >/dev/null || need+=(redis-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ ${#need[@]} -eq 0 ]; then echo "system packages: all present"; exit 0; fi
echo "installing: ${need[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# policy-rc.d keeps Debian's nginx package from starting a system nginx on port 80.
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
