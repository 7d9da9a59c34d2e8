#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 for the integration and e2e tests:
# start it if installed, install it first if we are root on a Debian-like system, else explain.
set -euo pipefail
host=127.0.0.1
port=${RABBITMQ_PORT:-5672}

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if reachable; then exit 0; fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "RabbitMQ is not installed: installing it with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "error: RabbitMQ does not answer on $host:$port and is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server) or start a broker" >&2
    echo "on $host:$port with user guest/guest, then run 'make test' again." >&2
    exit 1
  fi
fi
if ! reachable; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
for _ in $(seq 90); do
  if reachable; then exit 0; fi
  sleep 1
done
echo "error: RabbitMQ did not start answering on $host:$port within 90 s" >&2
exit 1
