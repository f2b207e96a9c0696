//! Docker labels: any set of `traefik.*` labels on a few containers becomes a fragment (with its
//! problems) and then a configuration, never a panic. Input: one label per line, `key=value`;
//! a line `---` starts the next container (at most four).
#![no_main]

#[path = "ctx.rs"]
mod ctx;

use std::collections::BTreeMap;

use boma::providers::docker::{Container, Settings, build};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut containers = BTreeMap::new();
    for (i, block) in text.split("\n---\n").take(4).enumerate() {
        let labels: BTreeMap<String, String> = block
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let id = format!("{i:064x}");
        containers.insert(
            id.clone(),
            Container {
                id,
                name: format!("app-{}", i % 2),
                labels,
                running: true,
                network_mode: "bridge".into(),
                ports: vec![(80, "tcp".into())],
                networks: BTreeMap::from([("bridge".into(), format!("172.17.0.{}", i + 2))]),
                ..Default::default()
            },
        );
    }
    let fragment = build(&containers, &Settings::new("docker"));
    let fragments = BTreeMap::from([("docker".to_string(), fragment)]);
    let _ = boma::dynamic::assemble(&fragments, &ctx::assemble_ctx(), None, 1);
});
