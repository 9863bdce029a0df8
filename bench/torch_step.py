"""PyTorch float32 baseline of `deno task bench step`: the same RoBERTa + LoRA step, in plain torch.

usage: torch_step.py [--preset tiny|base|large] [--batch B] [--seq L] [--steps N] [--targets query,value]
                     [--rank R] [--threads T] [--seed S] [--device cpu|cuda]

`--device cuda` runs it on the first CUDA card (for comparing against our kernels on the same card through
Vulkan), with TF32 switched off for matrix products and convolutions so that it stays true fp32; the times end
with a host readback (`.tolist()`, `.item()`), which waits for the card.

Builds the network of model/roberta.ts for a preset of model/presets.ts with random weights (no transformers
package needed): RoBERTa embeddings (word + position, positions from pad id + 1, + token type, LayerNorm,
dropout), post-LN encoder layers (self-attention with an additive key mask, attention dropout, output dense,
dropout, residual LayerNorm; feed-forward with exact-erf GELU, dropout, residual LayerNorm), LoRA on the target
linears with peft semantics (y = W x + b + (alpha / r) · B A x, A ~ kaiming-uniform, B = 0, lora dropout 0,
alpha = 2 r), and the classification head (dropout, dense, tanh, dropout, out_proj) on the first token;
cross-entropy; AdamW on the LoRA matrices and the head only (the base has requires_grad False, so autograd
skips every frozen weight gradient and the backward below layer 0, as our backward does).

Times, after one warm-up, `--steps` repetitions of
- forward: eval mode under torch.no_grad(), ending with the logits as a Python list (what a caller waits for);
- train step: train mode (dropouts on), forward, loss, backward, AdamW step, loss.item() (skipped with
  --forward-only: its fields are null);
prints the medians and tokens/s, and as the LAST line one JSON object for bench/step.ts:
{"torch": version, "threads": T, "forward_s": ..., "step_s": ..., "forward_tokens_per_s": ...,
 "step_tokens_per_s": ..., "peak_rss_bytes": ..., ...}.
Without torch it prints a skip message (install: apt-get install python3-torch) and exits 0.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

PRESETS = {
    # name: (hidden, layers, heads, intermediate), as model/presets.ts
    "tiny": (32, 2, 2, 64),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}
VOCAB, MAX_POS, PAD_ID, LN_EPS, DROPOUT = 50265, 514, 1, 1e-5, 0.1
TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="base", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--targets", default="query,value")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forward-only", action="store_true", help="skip the training step (step_s is null)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    a = p.parse_args()
    for name in ("batch", "seq", "steps", "rank", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(a, name)}")
    if a.seq + PAD_ID + 1 > MAX_POS:
        p.error(f"--seq {a.seq} exceeds the {MAX_POS - PAD_ID - 1} positions RoBERTa has")
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in a.targets if t not in TARGETS]
    if bad or not a.targets:
        p.error(f"--targets must be a comma-separated subset of {','.join(TARGETS)}, got {bad or 'nothing'}")
    return a


def main() -> None:
    a = parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch_step: skipped: cannot import torch ({e}); install it with: apt-get install python3-torch")
        print(json.dumps({"skipped": f"torch not importable: {e}"}))
        return

    if a.device == "cuda" and not torch.cuda.is_available():
        print("torch_step: skipped: --device cuda but torch.cuda.is_available() is False")
        print(json.dumps({"skipped": "torch has no CUDA device"}))
        return
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # true fp32 products, not TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)  # every tensor is drawn on the CPU (same values on both) and moved there
    H, N, nh, I = PRESETS[a.preset]
    d = H // nh
    B, T, r = a.batch, a.seq, a.rank
    scaling = (2 * r) / r  # lora_alpha = 2r, peft: alpha / r
    labels_n = 2

    def frozen(*shape: int, std: float = 0.02) -> "torch.Tensor":
        return (torch.randn(*shape) * std).to(dev)

    def linear(n_out: int, n_in: int) -> dict:
        return {"w": frozen(n_out, n_in), "b": frozen(n_out)}

    emb = {
        "word": frozen(VOCAB, H),
        "pos": frozen(MAX_POS, H),
        "type": frozen(1, H),
        "ln_w": torch.ones(H).to(dev),
        "ln_b": torch.zeros(H).to(dev),
    }
    trainable = []
    layers = []
    for _ in range(N):
        L = {
            "query": linear(H, H),
            "key": linear(H, H),
            "value": linear(H, H),
            "attention.output.dense": linear(H, H),
            "ln1": (torch.ones(H).to(dev), torch.zeros(H).to(dev)),
            "intermediate.dense": linear(I, H),
            "output.dense": linear(H, I),
            "ln2": (torch.ones(H).to(dev), torch.zeros(H).to(dev)),
        }
        for t in a.targets:
            n_out, n_in = L[t]["w"].shape
            lora_a = torch.empty(r, n_in)
            torch.nn.init.kaiming_uniform_(lora_a, a=math.sqrt(5))  # peft's init of lora_A
            L[t]["lora_a"] = lora_a.to(dev).requires_grad_(True)
            L[t]["lora_b"] = torch.zeros(n_out, r).to(dev).requires_grad_(True)  # peft: B = 0
            trainable += [L[t]["lora_a"], L[t]["lora_b"]]
        layers.append(L)
    head = {
        "dense_w": (torch.randn(H, H) * 0.02).to(dev).requires_grad_(True),
        "dense_b": torch.zeros(H).to(dev).requires_grad_(True),
        "out_w": (torch.randn(labels_n, H) * 0.02).to(dev).requires_grad_(True),
        "out_b": torch.zeros(labels_n).to(dev).requires_grad_(True),
    }
    trainable += list(head.values())
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)

    def lin(x: "torch.Tensor", m: dict, train: bool) -> "torch.Tensor":
        y = F.linear(x, m["w"], m["b"])
        if "lora_a" in m:
            y = y + scaling * F.linear(F.linear(x, m["lora_a"]), m["lora_b"])  # lora_dropout 0
        return y

    def forward(ids: "torch.Tensor", key_mask: "torch.Tensor", train: bool) -> "torch.Tensor":
        p = DROPOUT if train else 0.0
        pos = torch.arange(PAD_ID + 1, PAD_ID + 1 + T, device=dev).unsqueeze(0)  # no padding: positions pad+1 ..
        x = emb["word"][ids] + emb["pos"][pos] + emb["type"][0]
        x = F.dropout(F.layer_norm(x, (H,), emb["ln_w"], emb["ln_b"], LN_EPS), p, train)
        add_mask = (1.0 - key_mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for L in layers:
            q = lin(x, L["query"], train).view(B, T, nh, d).transpose(1, 2)
            k = lin(x, L["key"], train).view(B, T, nh, d).transpose(1, 2)
            v = lin(x, L["value"], train).view(B, T, nh, d).transpose(1, 2)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + add_mask
            probs = F.dropout(torch.softmax(s, dim=-1), p, train)
            ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H)
            o = F.dropout(lin(ctx, L["attention.output.dense"], train), p, train)
            x = F.layer_norm(o + x, (H,), *L["ln1"], LN_EPS)
            f = F.gelu(lin(x, L["intermediate.dense"], train))
            f = F.dropout(lin(f, L["output.dense"], train), p, train)
            x = F.layer_norm(f + x, (H,), *L["ln2"], LN_EPS)
        c = F.dropout(x[:, 0, :], p, train)
        c = torch.tanh(F.linear(c, head["dense_w"], head["dense_b"]))
        c = F.dropout(c, p, train)
        return F.linear(c, head["out_w"], head["out_b"])

    # Inputs as bench/step.ts builds them: first token 0, the others in 3..vocab-1, no padding.
    g = torch.Generator(device="cpu").manual_seed(a.seed + 1)
    ids = torch.randint(3, VOCAB, (B, T), generator=g, device="cpu")
    ids[:, 0] = 0
    ids = ids.to(dev)
    key_mask = torch.ones(B, T, device=dev)
    labels = torch.randint(0, labels_n, (B,), generator=g, device="cpu").to(dev)

    def fwd_once() -> list:
        with torch.no_grad():
            return forward(ids, key_mask, False).tolist()

    def step_once() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(ids, key_mask, True), labels)
        loss.backward()
        opt.step()
        return loss.item()

    def timed(fn) -> tuple:
        out = fn()  # warm-up
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        m = len(times) // 2
        return (times[m] if len(times) % 2 else (times[m - 1] + times[m]) / 2), out

    fwd_s, logits = timed(fwd_once)
    if not all(math.isfinite(v) for row in logits for v in row):
        sys.exit("torch_step: forward produced non-finite logits")
    step_s, loss = (None, float("nan")) if a.forward_only else timed(step_once)
    if not a.forward_only and not math.isfinite(loss):
        sys.exit(f"torch_step: training step gave loss {loss}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    tok = B * T
    where = f"{a.threads} threads" if a.device == "cpu" else torch.cuda.get_device_name(0) + " (TF32 off)"
    print(
        f"torch {torch.__version__} fp32, {where}, {a.preset} batch {B} x seq {T}, LoRA r {r} on "
        f"{','.join(a.targets)}: forward {fwd_s * 1000:.1f} ms ({tok / fwd_s:.0f} tokens/s), "
        + ("no train step (--forward-only)" if step_s is None else
           f"train step {step_s * 1000:.1f} ms ({tok / step_s:.0f} tokens/s), last loss {loss:.4f}")
        + f", peak RSS {rss / 2**20:.1f} MiB (median of {a.steps} after 1 warm-up)"
    )
    print(json.dumps({
        "torch": torch.__version__,
        "threads": a.threads,
        "device": "cpu" if a.device == "cpu" else torch.cuda.get_device_name(0),
        "preset": a.preset,
        "batch": B,
        "seq": T,
        "rank": r,
        "targets": a.targets,
        "steps": a.steps,
        "forward_s": fwd_s,
        "step_s": step_s,
        "forward_tokens_per_s": tok / fwd_s,
        "step_tokens_per_s": None if step_s is None else tok / step_s,
        "last_loss": None if step_s is None else loss,
        "peak_rss_bytes": rss,
        "peak_device_bytes": torch.cuda.max_memory_allocated() if a.device == "cuda" else None,
    }))


if __name__ == "__main__":
    main()
