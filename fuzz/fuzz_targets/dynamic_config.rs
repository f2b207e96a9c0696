//! Dynamic configuration (file provider): parse, then assemble whatever parsed, never a panic.
#![no_main]

#[path = "ctx.rs"]
mod ctx;

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = boma::dynamic::schema::parse_dynamic(text, std::path::Path::new("fuzz.toml"))
    else {
        return;
    };
    let mut fragments = BTreeMap::new();
    fragments.insert(
        "file".to_string(),
        boma::dynamic::Fragment {
            config: std::sync::Arc::new(config),
            ..Default::default()
        },
    );
    let _ = boma::dynamic::assemble(&fragments, &ctx::assemble_ctx(), None, 1);
});
