#!/bin/sh
# Installs Debian's Chromium for the browser tests of `prov ui`,
# unless a chromium is already on PATH. Needs root or sudo; no browser download.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "install-browser: chromium is missing and neither root nor sudo is available;" \
       "install Debian's chromium package, then rerun" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
