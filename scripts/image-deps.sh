#!/usr/bin/env bash
# What `make image`, `make qemu` and the image tests need on a Debian bookworm host, installed only
# when missing (idempotent). Loud on failure: the image tests must never silently skip.
#
# - the arm64 foreign architecture and the non-free-firmware component (for raspi-firmware), so
#   that `apt-get download` can fetch the pinned arm64 packages named in board/*/board.toml;
# - qemu-system-arm (qemu-system-aarch64), e2fsprogs (mke2fs -d), xz-utils, the aarch64 cross gcc.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
SRC=/etc/apt/sources.list.d/boma-image.sources
updated=0
apt_update() { if [ "$updated" = 0 ]; then $SUDO apt-get update -qq; updated=1; fi; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "image-deps: adding the arm64 architecture"
  $SUDO dpkg --add-architecture arm64
  apt_update_needed=1
fi
if [ ! -f "$SRC" ]; then
  echo "image-deps: adding $SRC (bookworm non-free-firmware, for raspi-firmware)"
  $SUDO tee "$SRC" >/dev/null <<'SOURCES'
# Added by boma's scripts/image-deps.sh: raspi-firmware lives in non-free-firmware.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt_update_needed=1
fi
# The arm64 package lists must be present for `apt-get download pkg:arm64`.
if [ "${apt_update_needed:-0}" = 1 ] || ! ls /var/lib/apt/lists/*binary-arm64_Packages* >/dev/null 2>&1 \
   || ! ls /var/lib/apt/lists/*non-free-firmware_binary-arm64_Packages* >/dev/null 2>&1; then
  apt_update
fi

need=()
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v e2fsck >/dev/null || need+=(e2fsprogs)
command -v xz >/dev/null || need+=(xz-utils)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "image-deps: installing ${need[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for t in qemu-system-aarch64 mke2fs e2fsck dumpe2fs xz aarch64-linux-gnu-gcc apt-get; do
  command -v "$t" >/dev/null || { echo "image-deps: $t still missing" >&2; exit 1; }
done
apt-cache show busybox-static:arm64 >/dev/null 2>&1 || { echo "image-deps: no arm64 package lists (apt-get update failed?)" >&2; exit 1; }
apt-cache show raspi-firmware >/dev/null 2>&1 || { echo "image-deps: raspi-firmware not found (non-free-firmware missing?)" >&2; exit 1; }
# oelint-adv (PyPI): lints the Yocto layer (make yocto-lint).
if ! command -v oelint-adv >/dev/null; then
  echo "image-deps: installing oelint-adv from PyPI"
  PIP=$(command -v pip3 || command -v pip || true)
  if [ -z "$PIP" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    PIP=$(command -v pip3)
  fi
  "$PIP" install -q oelint-adv 2>/dev/null || "$PIP" install -q --break-system-packages oelint-adv
  hash -r
fi
command -v oelint-adv >/dev/null || { echo "image-deps: oelint-adv not on PATH after install" >&2; exit 1; }
rustup target list --installed | grep -qx aarch64-unknown-linux-musl || rustup target add aarch64-unknown-linux-musl
echo "image-deps: ok ($(qemu-system-aarch64 --version | head -1), mke2fs $(mke2fs -V 2>&1 | head -1 | awk '{print $2}'))"
