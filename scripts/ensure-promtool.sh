#!/usr/bin/env bash
# promtool parses the alert rules and the dashboard's queries and runs the rules' unit tests
# (tests/deploy/test_monitoring.py); without it that test falls back to a structural check
# and says so. Install Debian's prometheus package for it when we can (nothing is started).
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "promtool is not installed: installing Debian's prometheus package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
else
  echo "warning: no promtool, so the alert rules get a structural check only" \
    "(Debian: sudo apt-get install prometheus)" >&2
fi
