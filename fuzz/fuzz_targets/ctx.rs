//! What the configuration targets assemble with: a plain entry point, `web`, a TLS one,
//! `websecure`, and default bounds.

pub fn assemble_ctx() -> boma::dynamic::AssembleCtx {
    boma::dynamic::AssembleCtx {
        entrypoints: vec![
            boma::dynamic::EntryPointSpec {
                name: "web".into(),
                as_default: false,
                middlewares: Vec::new(),
                tls: None,
            },
            boma::dynamic::EntryPointSpec {
                name: "websecure".into(),
                as_default: false,
                middlewares: Vec::new(),
                tls: Some(Default::default()),
            },
        ],
        max_routes: 1000,
        middleware_bounds: Default::default(),
        admin: Default::default(),
        resolvers: Default::default(),
    }
}
