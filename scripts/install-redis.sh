#!/usr/bin/env bash
# Debian's redis-server, for the BullMQ scale-out tests (each test starts its own on a free loopback port).
set -euo pipefail
command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null)
echo "redis-server: $(redis-server --version 2>/dev/null || echo missing)"
