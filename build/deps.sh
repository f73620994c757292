#!/usr/bin/env bash
# Installs what the tests need on a Debian machine with Go: a real mosquitto broker,
# qemu-user-static for the ARM builds, chromium for the console's browser tests, and
# mailpit (a real SMTP server with an HTTP API, built with go install into build/out/tools)
# for the e-mail notifications. Does nothing for what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mailpit >/dev/null 2>&1 && [ ! -x build/out/tools/mailpit ]; then
  echo "installing mailpit into build/out/tools" >&2
  GOBIN="$PWD/build/out/tools" GOOS= GOARCH= GOARM= CGO_ENABLED=0 go install github.com/axllent/mailpit@v1.33.1
fi
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package enables a system broker on port 1883; the tests start their own.
if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
