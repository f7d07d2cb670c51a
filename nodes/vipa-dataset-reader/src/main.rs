//! dora node binary: see the `vipa_dataset_reader` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_dataset_reader::ReaderConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-dataset-reader");
    let cfg: ReaderConfig = vipa_node_kit::load_config().wrap_err("vipa-dataset-reader config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_dataset_reader::node::run(node, events, cfg)
}
