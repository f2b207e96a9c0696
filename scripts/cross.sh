#!/usr/bin/env bash
# Build the static aarch64 binary with plain cargo and Debian's cross gcc, and report its size.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-musl
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  echo "cross: installing gcc-aarch64-linux-gnu"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
cargo build --release --target "$TARGET"
bin=target/$TARGET/release/boma
file "$bin" 2>/dev/null || true
size=$(stat -c %s "$bin")
echo "cross: $bin is $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.2f", s/1048576}') MiB, stripped)"
