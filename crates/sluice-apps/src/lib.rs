//! `sluice-apps`: the app framework's model. It owns the workspace (finding
//! `sluice.yml`, its environments), templates and scaffolding (`init`,
//! `new-app`, `new-page`), running and testing apps, deploy plans and the
//! audit trail.
