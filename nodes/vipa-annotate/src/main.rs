//! dora node binary: see the `vipa_annotate` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_annotate::AnnotateConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-annotate");
    let cfg: AnnotateConfig = vipa_node_kit::load_config().wrap_err("vipa-annotate config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_annotate::node::run(node, events, cfg)
}
