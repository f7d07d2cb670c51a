//! dora node binary: see the `vipa_encoder_2d` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_encoder_2d::Encoder2dConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-encoder-2d");
    let cfg: Encoder2dConfig = vipa_node_kit::load_config().wrap_err("vipa-encoder-2d config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_encoder_2d::node::run(node, events, cfg)
}
