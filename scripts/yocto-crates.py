#!/usr/bin/env python3
"""Write yocto/meta-boma/recipes-core/boma/boma-crates.inc from Cargo.lock: one crate:// URI
and sha256 per crates.io package, the form of oe-core's cargo-update-recipe-crates class."""
import pathlib
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
lock = tomllib.loads((root / "Cargo.lock").read_text())
lines = [
    "# Generated from Cargo.lock by scripts/yocto-crates.py; do not edit.",
    "# Crates of the whole workspace; bitbake fetches them, cargo builds offline.",
    "",
]
uris = []
sums = []
for p in sorted(lock.get("package", []), key=lambda p: (p["name"], p["version"])):
    if p.get("source", "").startswith("registry+") and "checksum" in p:
        uris.append(f"crate://crates.io/{p['name']}/{p['version']}")
        sums.append(f'SRC_URI[{p["name"]}-{p["version"]}.sha256sum] = "{p["checksum"]}"')
prefix = 'SRC_URI += "'
for i, uri in enumerate(uris):
    lead = prefix if i == 0 else " " * len(prefix)
    tail = '"' if i == len(uris) - 1 else " \\"
    lines.append(f"{lead}{uri}{tail}")
lines.append("")
out = root / "yocto/meta-boma/recipes-core/boma/boma-crates.inc"
text = "\n".join(lines + sums) + "\n"
if not out.exists() or out.read_text() != text:
    out.write_text(text)
    print(f"yocto-crates: wrote {out.relative_to(root)} ({len(sums)} crates)", file=sys.stderr)
