"""PyTorch twin of `model-bench` (benches/src/bin/model-bench.rs): one training step of the
`small` VIPA preset, built from transformers where it exists upstream.

- semantic encoder: transformers' `InternVLVisionModel` (224 px, patch 14, width 384, 6 heads,
  MLP 1536, 6 layers, qkv bias, LayerNorm, layer scale), class token dropped, InternVL's
  pixel shuffle (v2, 0.5) and the `mlp1` projector (LayerNorm, Linear 1536->576, GELU,
  Linear 576->576);
- 3D encoder: the point-map ViT ([x, y, z, valid] patches of 16 -> MLP embed -> + position
  embedding -> 4 `InternVLVisionLayer`s of width 192 -> LayerNorm -> Linear to 256), with the
  same invalid-pixel cleaning and token validity;
- fusion (written here, as models/src/vision/fusion.rs): LayerNorm on both inputs, q from the
  semantic tokens, k / v from the 3D tokens, 6-head attention with invalid keys masked, output
  projection, `LN(dropout(V_sem + alpha * F_spa))`, before the projector;
- LLM: transformers' `LlamaForCausalLM` with SmolLM2-135M's config, fed `inputs_embeds` with
  the 64 visual tokens spliced in; masked next-token cross-entropy.

Batch 2, sequence 128 (bos, 64 image tokens, 63 text tokens), 224 px images and point maps, the
same shapes as the Rust side; values come from torch's seeded generator (timings do not depend
on them). Stage 1 trains the fusion layer and the point-map ViT; stage 2 also the LLM. 2
threads. Prints `RESULT case median_ms min_ms peak_memory_mib grads/vars trainable loss` and a
`PHASES` line with the same phase names as model-bench. `--device cuda` runs on GPU 0, with a
synchronisation at every phase boundary; the memory column is then `max_memory_allocated`
instead of the host's peak RSS.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import InternVLVisionConfig, InternVLVisionModel, LlamaConfig, LlamaForCausalLM
from transformers.models.internvl.modeling_internvl import InternVLVisionLayer

BATCH, SEQ = 2, 128
PHASES = ["pointmap_vit", "internvit_fusion_projector", "llm_decoder", "lm_head_loss", "backward", "adamw"]


def vision_config(hidden, heads, mlp, layers, image, patch, eps, ls):
    cfg = InternVLVisionConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        image_size=[image, image],
        patch_size=[patch, patch],
        attention_bias=True,
        layer_norm_eps=eps,
        layer_scale_init_value=ls,
        use_mean_pooling=True,  # = no final norm (InternViT has none)
        hidden_act="gelu",
    )
    # The point-map ViT builds InternVLVisionLayers directly, outside a PreTrainedModel that
    # would pick the attention kernel: ask for SDPA, as the vision tower gets.
    cfg._attn_implementation = "sdpa"
    return cfg


def clean_point_map(points):
    """f32[b, h, w, 3] -> (cleaned points, f32[b, h, w, 1] validity), as spatial.rs."""
    finite = torch.isfinite(points).all(-1, keepdim=True)
    nonzero = points.abs().amax(-1, keepdim=True) > 0
    valid = (finite & nonzero).float()
    return torch.where(valid.bool(), points, torch.zeros_like(points)), valid


class PointMapVit(nn.Module):
    def __init__(self, image=224, patch=16, d=192, heads=3, mlp=768, layers=4, out=256):
        super().__init__()
        self.p, self.grid = patch, image // patch
        self.fc1 = nn.Linear(patch * patch * 4, d)
        self.fc2 = nn.Linear(d, d)
        self.pos = nn.Parameter(torch.randn(self.grid * self.grid, d) * 0.02)
        cfg = vision_config(d, heads, mlp, layers, image, patch, 1e-5, 1.0)
        self.layers = nn.ModuleList(InternVLVisionLayer(cfg) for _ in range(layers))
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.head = nn.Linear(d, out)

    def forward(self, points):
        b, h, w, _ = points.shape
        p, gh, gw = self.p, h // self.p, w // self.p
        cleaned, valid = clean_point_map(points)
        feats = torch.cat([cleaned, valid], -1)
        patches = feats.reshape(b, gh, p, gw, p, 4).permute(0, 1, 3, 2, 4, 5).reshape(b, gh * gw, p * p * 4)
        token_valid = valid.reshape(b, gh, p, gw, p).permute(0, 1, 3, 2, 4).reshape(b, gh * gw, p * p).amax(-1)
        x = self.fc2(F.gelu(self.fc1(patches))) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)), token_valid


class Fusion(nn.Module):
    def __init__(self, dv=384, ds=256, heads=6, dropout=0.1):
        super().__init__()
        self.heads = heads
        self.ln_sem, self.ln_spa, self.ln_out = nn.LayerNorm(dv), nn.LayerNorm(ds), nn.LayerNorm(dv)
        self.q, self.k, self.v = nn.Linear(dv, dv), nn.Linear(ds, dv), nn.Linear(ds, dv)
        self.o = nn.Linear(dv, dv)
        self.alpha = nn.Parameter(torch.tensor([0.5]))
        self.drop = nn.Dropout(dropout)

    def forward(self, sem, spa, valid):
        b, nv, dv = sem.shape
        ns, h = spa.shape[1], self.heads
        spa_n = self.ln_spa(spa)
        split = lambda t, n: t.reshape(b, n, h, dv // h).transpose(1, 2)
        q, k, v = split(self.q(self.ln_sem(sem)), nv), split(self.k(spa_n), ns), split(self.v(spa_n), ns)
        mask = ((valid - 1.0) * 1e9).reshape(b, 1, 1, ns)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        f_spa = self.o(a.transpose(1, 2).reshape(b, nv, dv))
        return self.ln_out(self.drop(sem + self.alpha * f_spa))


def pixel_shuffle(x, k=2):
    """InternVL's pixel_shuffle v2: f32[b, gh, gw, c] -> f32[b, gh/k, gw/k, c*k*k]."""
    b, gh, gw, c = x.shape
    x = x.reshape(b, gh, gw // k, c * k).permute(0, 2, 1, 3).contiguous()
    x = x.reshape(b, gw // k, gh // k, c * k * k)
    return x.permute(0, 2, 1, 3).contiguous()


class SmallVipa(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = InternVLVisionModel(vision_config(384, 6, 1536, 6, 224, 14, 1e-6, 1.0))
        self.spatial = PointMapVit()
        self.fusion = Fusion()
        self.mlp1 = nn.Sequential(nn.LayerNorm(1536), nn.Linear(1536, 576), nn.GELU(), nn.Linear(576, 576))
        self.llm = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=49152,
                hidden_size=576,
                intermediate_size=1536,
                num_hidden_layers=30,
                num_attention_heads=9,
                num_key_value_heads=3,
                head_dim=64,
                max_position_embeddings=8192,
                rms_norm_eps=1e-5,
                rope_theta=100000.0,
                tie_word_embeddings=True,
                attention_bias=False,
                mlp_bias=False,
            )
        )


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", type=int, choices=[1, 2], default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(7)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    model = SmallVipa().to(dev)
    model.train()
    model.requires_grad_(False)
    trainable = [model.fusion, model.spatial] + ([model.llm] if args.stage == 2 else [])
    for m in trainable:
        m.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    img_tok, placeholder = 64, 49152
    pixels = torch.randn(BATCH, 3, 224, 224)
    z = 0.3 + 1.2 * torch.rand(BATCH, 224, 224, 1)
    points = torch.cat([(torch.rand_like(z) - 0.5) * z, (torch.rand_like(z) - 0.5) * z, z], -1)
    points[torch.rand(BATCH, 224, 224) < 0.1] = 0.0
    text = torch.randint(3, 49152, (BATCH, SEQ - 1 - img_tok))
    ids = torch.cat([torch.ones(BATCH, 1, dtype=torch.long), torch.full((BATCH, img_tok), placeholder), text], 1)
    targets = torch.cat([ids[:, 1:], torch.full((BATCH, 1), 2)], 1)
    targets[targets >= 49152] = 0
    mask = (torch.arange(SEQ) >= img_tok).float().expand(BATCH, SEQ)
    pixels, points, ids, targets, mask = (t.to(dev) for t in (pixels, points, ids, targets, mask))

    totals, phases = [], [[] for _ in PHASES]
    for step in range(args.steps + 1):
        sync()
        t = [time.perf_counter()]

        def lap():
            sync()
            t.append(time.perf_counter())

        opt.zero_grad(set_to_none=True)
        spa, valid = model.spatial(points)
        lap()
        feats = model.vision(pixel_values=pixels).last_hidden_state[:, 1:]
        feats = model.fusion(feats, spa, valid)
        vis = model.mlp1(pixel_shuffle(feats.reshape(BATCH, 16, 16, 384)).reshape(BATCH, img_tok, 1536))
        lap()
        is_img = ids == placeholder
        embeds = model.llm.get_input_embeddings()(torch.where(is_img, 0, ids))
        embeds = embeds.masked_scatter(is_img.unsqueeze(-1), vis.reshape(-1, 576))
        hidden = model.llm.model(inputs_embeds=embeds).last_hidden_state
        lap()
        logits = model.llm.lm_head(hidden).float()
        nll = F.cross_entropy(logits.reshape(-1, 49152), targets.reshape(-1), reduction="none")
        loss = (nll * mask.reshape(-1)).sum() / mask.sum()
        lap()
        loss.backward()
        lap()
        opt.step()
        lap()
        if step > 0:
            dts = [(b - a) * 1e3 for a, b in zip(t, t[1:])]
            totals.append(sum(dts))
            for acc, v in zip(phases, dts):
                acc.append(v)
    with_grad = sum(p.grad is not None for p in params)
    n_params = sum(p.numel() for p in params)
    case = f"torch_stage{args.stage}"
    memory = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else peak_rss_mib()
    print(f"RESULT {case} {statistics.median(totals):.1f} {min(totals):.1f} {memory:.0f} "
          f"{with_grad}/{len(params)} {n_params} {loss.item():.4f}")
    print(f"PHASES {case} " + ", ".join(f"{n} {statistics.median(v):.0f}" for n, v in zip(PHASES, phases)))


if __name__ == "__main__":
    main()
