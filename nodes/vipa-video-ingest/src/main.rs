//! dora node binary: see the `vipa_video_ingest` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_video_ingest::IngestConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-video-ingest");
    let cfg: IngestConfig = vipa_node_kit::load_config().wrap_err("vipa-video-ingest config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_video_ingest::node::run(node, events, cfg)
}
