//! `vipa-e2e`: end-to-end tests that run vipa dataflows through the real `dora` CLI
//! (`tests/*.rs`). The helpers they use (finding the CLI, building the nodes, rewriting and
//! running committed graphs, writing test clips) are `vipa-tools`', re-exported here.

pub use vipa_tools::*;
