//! Updates: signed A/B slots booted through U-Boot (issue 12, `docs/design/updates-uboot.md`).
//! So far only the piece both sides share: [`env`], U-Boot's environment format, in which the
//! boot script and boma keep the A/B state on the boot partition. Below the wiring and above
//! nothing: it imports no other module of boma.

pub mod env;
