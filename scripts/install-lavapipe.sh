#!/usr/bin/env bash
# Installs Mesa's Vulkan drivers (lavapipe, a CPU implementation) from Debian bookworm-backports, which ONNX
# Runtime's WebGPU provider (Dawn) accepts; Debian 12's own Mesa 22.3 is rejected. Needs root and Debian's apt.
set -euo pipefail
if [ -e /usr/share/vulkan/icd.d/lvp_icd.json ] && dpkg -s mesa-vulkan-drivers 2>/dev/null | grep -q '^Version: 2[5-9]'; then
  echo "lavapipe already installed"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-lavapipe: needs root" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "install-lavapipe: needs Debian's apt-get" >&2; exit 1; }
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || { echo "install-lavapipe: written for Debian bookworm, found ${VERSION_CODENAME:-?}" >&2; exit 1; }
list=/etc/apt/sources.list.d/bookworm-backports.list
grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/ ||
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$list"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "lavapipe installed: $(dpkg -s mesa-vulkan-drivers | grep '^Version')"
