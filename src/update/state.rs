//! The A/B state as boma and the boot script (image/boot.cmd) share it: which slot is committed,
//! which one is on trial with how many boots left and which version, and which version's trial
//! failed. Kept in `abstate.env` and `abstate.bak` on the boot partition in U-Boot's
//! environment format ([`super::env`]), each written whole and flushed before the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env::{self, EnvError, STATE_SIZE, Which};

/// One of the two system slots (`a/`, `b/` on the boot partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// What the state files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbState {
    /// The committed slot: booted when nothing is on trial.
    pub committed: Slot,
    /// The slot on trial, with its version and the trial boots it has left.
    pub trial: Option<Trial>,
    /// The version whose trial ran out (the boot script sets it when it goes back).
    pub failed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub slot: Slot,
    pub version: String,
    pub tries: u8,
}

impl Default for AbState {
    /// A freshly flashed card's: slot a, nothing on trial.
    fn default() -> Self {
        AbState {
            committed: Slot::A,
            trial: None,
            failed: None,
        }
    }
}

impl AbState {
    fn from_vars(v: &BTreeMap<String, String>) -> AbState {
        let get = |k: &str| v.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let trial = get("boma_try").and_then(Slot::parse).map(|slot| Trial {
            slot,
            version: get("boma_tryver").unwrap_or("").to_string(),
            // `setexpr` writes hex; below 10 it is the same.
            tries: get("boma_tries").and_then(|t| t.parse().ok()).unwrap_or(0),
        });
        AbState {
            committed: get("boma_slot").and_then(Slot::parse).unwrap_or(Slot::A),
            trial,
            failed: get("boma_failed").map(str::to_string),
        }
    }

    fn to_vars(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("boma_slot".into(), self.committed.name().into());
        if let Some(t) = &self.trial {
            v.insert("boma_try".into(), t.slot.name().into());
            v.insert("boma_tries".into(), t.tries.to_string());
            v.insert("boma_tryver".into(), t.version.clone());
        }
        if let Some(f) = &self.failed {
            v.insert("boma_failed".into(), f.clone());
        }
        v
    }
}

/// The two state files of a boot partition.
#[derive(Debug, Clone)]
pub struct StateFiles {
    primary: PathBuf,
    backup: PathBuf,
}

impl StateFiles {
    pub fn new(boot: &Path) -> StateFiles {
        StateFiles {
            primary: boot.join("abstate.env"),
            backup: boot.join("abstate.bak"),
        }
    }

    /// The state, from the primary copy or else the backup.
    pub fn read(&self) -> Result<(AbState, Which), EnvError> {
        let (vars, which) = env::read_pair(&self.primary, &self.backup, STATE_SIZE)?;
        Ok((AbState::from_vars(&vars), which))
    }

    /// Write `state` to both copies, one after the other.
    pub fn write(&self, state: &AbState) -> Result<(), EnvError> {
        env::write_pair(&self.primary, &self.backup, &state.to_vars(), STATE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_files_the_script_reads() {
        let dir = tempfile::tempdir().expect("dir");
        let files = StateFiles::new(dir.path());
        let s = AbState {
            committed: Slot::B,
            trial: Some(Trial {
                slot: Slot::A,
                version: "2.1".into(),
                tries: 2,
            }),
            failed: Some("1.9".into()),
        };
        files.write(&s).expect("write");
        assert_eq!(files.read().expect("read"), (s, Which::Primary));
        let raw = std::fs::read(dir.path().join("abstate.env")).expect("raw");
        let want = b"boma_failed=1.9\0boma_slot=b\0boma_tries=2\0boma_try=a\0boma_tryver=2.1\0\0";
        assert_eq!(&raw[4..4 + want.len()], want);
        // What the script leaves after its last trial boot: no boma_try, a failure.
        let mut v = BTreeMap::new();
        v.insert("boma_slot".to_string(), "a".to_string());
        v.insert("boma_try".to_string(), String::new());
        v.insert("boma_failed".to_string(), "2".to_string());
        let back = AbState::from_vars(&v);
        assert_eq!(back.trial, None);
        assert_eq!(back.failed.as_deref(), Some("2"));
        assert_eq!(Slot::parse("c"), None);
        assert_eq!(Slot::A.other(), Slot::B);
    }
}
