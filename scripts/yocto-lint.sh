#!/usr/bin/env bash
# Refresh the layer's crate list from Cargo.lock and lint the layer with oelint-adv. This checks
# the recipes' syntax and style only: a bitbake build is not run here (no Yocto build host).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/yocto-crates.py
command -v oelint-adv >/dev/null || { echo "yocto-lint: oelint-adv missing; run scripts/image-deps.sh" >&2; exit 1; }
mapfile -t files < <(find yocto/meta-boma -name '*.bb' -o -name '*.bbappend' -o -name '*.inc' | sort)
# Linted for the one release the layer declares (wrynose: its Rust is >= rust-version, see
# docs/yocto.md). Suppressed, with reasons: homepageping would reach out to the Internet (tests
# talk to 127.0.0.1 and package registries only); bbclassextend: boma-init only installs target
# configuration, it has no native variant.
out=$(oelint-adv --quiet --release wrynose \
  --suppress oelint.vars.homepageping --suppress oelint.var.bbclassextend \
  "${files[@]}" 2>&1) || true
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "yocto-lint: oelint-adv found problems" >&2
  exit 1
fi
echo "yocto-lint: ok (${#files[@]} files, oelint-adv $(oelint-adv --version 2>&1 | awk '{print $2}'))"
