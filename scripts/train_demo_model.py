#!/usr/bin/python3
"""Trains the small byte-level Llama that scripts/demo.sh answers with, so that it speaks.

The model reads and writes bytes (token id = byte value, as kvcache-worker's tokenizer), and
is trained on the license texts every Debian system ships (/usr/share/common-licenses), with
half of its windows drawn from GPL-3 (--focus), the text the demo's prompt comes from, so
that it continues that prompt with the license's own words. 400 steps of 16 windows of 256
bytes, every tenth step one 2,048-byte window instead: without those, attention over the
distances of the demo's 2,000-byte prompt, never trained, turns its answer into noise; run
last rather than interleaved, they made the model forget (it answered "contributor of the
contributor of ..." to every prompt). Deterministic: fixed seeds, fixed data order, two
threads; the same machine makes the same weights. It writes a Hugging Face style folder
that kvcache-worker loads as it is (config.json, model.safetensors in f32, written last);
the worker's greedy tokens equal this script's own forward pass. Weights are never
committed.

scripts/demo.sh runs it once into build/models/demo and retrains when this file changes;
docs/worker.md ("The demo model") has its time and the demo's answer.

Usage: /usr/bin/python3 scripts/train_demo_model.py --out=DIR [--steps=N] [--long-every=N] ...
Needs Debian's python3-torch.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

CORPUS_DIR = "/usr/share/common-licenses"

# The architecture (a Llama: RMSNorm, RoPE rotate-half, grouped-query attention, SwiGLU).
CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 256,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def corpus():
    """The license texts, in name order, each file once (symlinks skipped)."""
    data = bytearray()
    for name in sorted(os.listdir(CORPUS_DIR)):
        path = os.path.join(CORPUS_DIR, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data += f.read()
    return bytes(data)


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        h, v = c["hidden_size"], c["vocab_size"]
        self.embed = torch.nn.Embedding(v, h)
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            q = c["num_attention_heads"] * c["head_dim"]
            kv = c["num_key_value_heads"] * c["head_dim"]
            i = c["intermediate_size"]
            layer = torch.nn.ModuleDict({
                "q": torch.nn.Linear(h, q, bias=False), "k": torch.nn.Linear(h, kv, bias=False),
                "v": torch.nn.Linear(h, kv, bias=False), "o": torch.nn.Linear(q, h, bias=False),
                "gate": torch.nn.Linear(h, i, bias=False), "up": torch.nn.Linear(h, i, bias=False),
                "down": torch.nn.Linear(i, h, bias=False),
            })
            layer.input_norm = torch.nn.Parameter(torch.ones(h))
            layer.post_norm = torch.nn.Parameter(torch.ones(h))
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(h))

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"]))

    def rope(self, x, start):
        # x: [batch, heads, n, head_dim]; rotate-half pairs (j, j + head_dim/2), as the worker.
        d = x.shape[-1]
        half = d // 2
        inv = self.c["rope_theta"] ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
        pos = torch.arange(start, start + x.shape[-2], dtype=torch.float64)
        ang = torch.outer(pos, inv)
        cos, sin = ang.cos().float(), ang.sin().float()
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def forward(self, tokens, start=0):
        c = self.c
        bsz, n = tokens.shape
        nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        x = self.embed(tokens)
        for L in self.layers:
            y = self.rms(x, L.input_norm)
            q = L["q"](y).view(bsz, n, nh, hd).transpose(1, 2)
            k = L["k"](y).view(bsz, n, nkv, hd).transpose(1, 2)
            v = L["v"](y).view(bsz, n, nkv, hd).transpose(1, 2)
            q, k = self.rope(q, start), self.rope(k, start)
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            mask = torch.ones(n, n, dtype=torch.bool).triu(1)
            a = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
            x = x + L["o"](a.transpose(1, 2).reshape(bsz, n, nh * hd))
            y = self.rms(x, L.post_norm)
            x = x + L["down"](F.silu(L["gate"](y)) * L["up"](y))
        return self.rms(x, self.norm) @ self.embed.weight.t()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # Keeps the tensors 8-byte aligned.
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def export(model, out):
    os.makedirs(out, exist_ok=True)
    c = model.c
    tensors = [("model.embed_tokens.weight", model.embed.weight), ("model.norm.weight", model.norm)]
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
             "down": "mlp.down_proj"}
    for i, L in enumerate(model.layers):
        p = f"model.layers.{i}."
        tensors.append((p + "input_layernorm.weight", L.input_norm))
        tensors.append((p + "post_attention_layernorm.weight", L.post_norm))
        for k, n in names.items():
            tensors.append((p + n + ".weight", L[k].weight))
    tmp = os.path.join(out, "model.safetensors.tmp")
    write_safetensors(tmp, tensors)
    config = dict(c, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
                  rope_scaling=None, torch_dtype="float32")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "model.safetensors"))  # Last: marks the folder complete.


def windows(sources, share, count, length, gen):
    """`count` windows of `length` + 1 bytes: each from sources[1] with probability `share`,
    else from sources[0], at a random offset; drawn from `gen` (the same every run)."""
    out = []
    for _ in range(count):
        data = sources[1] if float(torch.rand(1, generator=gen)) < share else sources[0]
        s = int(torch.randint(0, len(data) - length - 1, (1,), generator=gen))
        out.append(data[s:s + length + 1])
    w = torch.stack(out)
    return w[:, :-1], w[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder to write the model into")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps (default 400)")
    ap.add_argument("--context", type=int, default=256, help="tokens per training window")
    ap.add_argument("--batch", type=int, default=16, help="windows per step")
    ap.add_argument("--long-every", type=int, default=10,
                    help="every Nth step is one --long-context window (default 10)")
    ap.add_argument("--long-context", type=int, default=2048,
                    help="the long window: as long as the demo's prompt (default 2048)")
    ap.add_argument("--focus", default="GPL-3",
                    help="the license the demo's prompt comes from (default GPL-3)")
    ap.add_argument("--focus-share", type=float, default=0.5,
                    help="share of the windows drawn from --focus (default 0.5)")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    data = torch.tensor(list(corpus()), dtype=torch.long)
    with open(os.path.join(CORPUS_DIR, args.focus), "rb") as f:
        focus = torch.tensor(list(f.read()), dtype=torch.long)
    sources = (data, focus)
    model = Llama(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), weight_decay=0.01)
    gen = torch.Generator().manual_seed(1)
    t0 = time.time()
    for step in range(args.steps):
        lr = 3e-3 * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        if (step + 1) % args.long_every == 0:
            # One window as long as the demo's prompt: attention over distances never trained
            # turns a 2,000-byte prompt's answer into noise. Interleaved rather than last, so
            # that the falling learning rate keeps what the short windows taught.
            x, y = windows(sources, args.focus_share, 1, args.long_context, gen)
            start = 0
        else:
            x, y = windows(sources, args.focus_share, args.batch, args.context, gen)
            # A random RoPE offset: the worker runs prompts thousands of tokens long.
            start = int(torch.randint(0, 2048, (1,), generator=gen))
        loss = F.cross_entropy(model(x, start).reshape(-1, CONFIG["vocab_size"]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"  step {step + 1}/{args.steps}  loss {loss.item():.3f}  "
                  f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    export(model, args.out)
    print(f"wrote {args.out} ({sum(p.numel() for p in model.parameters())} parameters, "
          f"{time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
