//! `[update]`: signed A/B updates (docs/updates.md). Updates need no section on the image: they
//! are on whenever the system was booted from an A/B slot (`boma.slot=` on the kernel command
//! line, which the image's boot script adds) and these defaults apply. The section moves the
//! paths (tests run a gateway against a folder) and sets the trial's timing.
//!
//! Describes and checks only; `update` does the work.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Duration;
use super::validate::Check;

/// `[update]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Update {
    /// The boot partition: `a/`, `b/`, `abstate.env`, `abstate.bak`.
    pub boot: PathBuf,
    /// The public key bundles must be signed with: 64 hex digits of an ed25519 key.
    pub public_key: PathBuf,
    /// What this system is (`board=`, `version=` lines, as the image builder writes them).
    pub release: PathBuf,
    /// The slot this system runs from, `a` or `b`; empty: `boma.slot=` of `/proc/cmdline`.
    pub slot: String,
    /// How long a slot on trial must be ready and serving DNS and HTTP before boma commits it
    /// (at most 5 minutes: init's trial guard reboots an uncommitted trial after 10).
    pub commit_after: Duration,
    /// How often the bootloader tries a new slot before it goes back to the old one.
    pub trial_boots: u8,
    /// Reboot into the new slot once it is written and switched to.
    pub reboot: bool,
    /// Written once the running slot is committed: init's trial guard stops looking then.
    pub committed_marker: PathBuf,
    /// The largest bundle accepted, in bytes.
    pub max_bundle: u64,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            boot: PathBuf::from("/boot"),
            public_key: PathBuf::from("/etc/boma/update.pub"),
            release: PathBuf::from("/etc/boma-release"),
            slot: String::new(),
            commit_after: Duration::from_secs(60),
            trial_boots: 2,
            reboot: true,
            committed_marker: PathBuf::from("/run/boma-committed"),
            max_bundle: 256 * 1024 * 1024,
        }
    }
}

impl Check<'_> {
    /// `[update]`'s values.
    pub(super) fn update(&mut self, c: &super::Config) {
        let Some(u) = &c.update else { return };
        if !["", "a", "b"].contains(&u.slot.as_str()) {
            self.value(
                &["update", "slot"],
                "the slot is `a` or `b` (or empty: the kernel's)",
            );
        }
        if !(1..=9).contains(&u.trial_boots) {
            self.value(&["update", "trial_boots"], "trial_boots is 1 to 9");
        }
        // Init reboots a trial that has not committed within boma.trial_limit (600 s by default):
        // the wait must end well before that.
        if u.commit_after.is_negative() || u.commit_after.to_std().as_secs() > 300 {
            self.value(&["update", "commit_after"], "commit_after is 0s to 5m");
        }
        if u.max_bundle < 1024 * 1024 {
            self.value(&["update", "max_bundle"], "max_bundle is at least 1 MiB");
        }
    }
}
