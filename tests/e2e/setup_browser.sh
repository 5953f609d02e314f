#!/usr/bin/env bash
# Installs Debian's Chromium for the end-to-end test when it is missing (playwright cannot
# download browsers here). Needs root, as CI and developer machines of this kind have.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is missing: run 'apt-get install chromium' as root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
