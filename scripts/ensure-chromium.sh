#!/usr/bin/env bash
# Make sure Chromium is installed for the dashboard's browser test (tests/e2e/test_dashboard.py,
# which drives it with Playwright): install Debian's package if we are root on a Debian-like
# system, else explain. Playwright's own browser download is never used.
set -euo pipefail
chromium=${CRYPTOCAST_CHROMIUM:-/usr/bin/chromium}

if [ -x "$chromium" ]; then exit 0; fi
if [ "$chromium" = /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is not installed: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "error: no Chromium at $chromium for the dashboard's browser test." >&2
echo "Install it (Debian: sudo apt-get install chromium)" >&2
echo "or point CRYPTOCAST_CHROMIUM at a Chromium or Chrome binary, then run 'make test' again." >&2
exit 1
