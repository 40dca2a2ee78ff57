#!/usr/bin/env bash
# Debian packages the test suite drives for real (see tests/README.md): installed when missing, so that
# `make test` does all set-up on a fresh machine. Needs root or sudo; otherwise it says what to install.
set -euo pipefail
missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo -n"; else
    echo "make test needs these Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and rerun" >&2
    exit 1
fi
echo "installing Debian packages the tests use: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
