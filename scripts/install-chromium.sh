#!/usr/bin/env bash
# Debian's chromium, for the browser tests (playwright-core drives /usr/bin/chromium; no browser download).
set -euo pipefail
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
echo "chromium: $(chromium --version 2>/dev/null || echo missing)"
