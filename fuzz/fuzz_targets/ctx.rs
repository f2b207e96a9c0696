//! What the configuration targets assemble with: one entry point, `web`, and default bounds.

pub fn assemble_ctx() -> boma::dynamic::AssembleCtx {
    boma::dynamic::AssembleCtx {
        entrypoints: vec![boma::dynamic::EntryPointSpec {
            name: "web".into(),
            as_default: false,
            middlewares: Vec::new(),
        }],
        max_routes: 1000,
        middleware_bounds: Default::default(),
        admin: Default::default(),
    }
}
