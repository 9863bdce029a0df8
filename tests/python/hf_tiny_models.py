"""Tiny random Hugging Face sequence classifiers for tests/hf_interop.gpu.test.ts.

Reads one JSON request on stdin and prints one JSON answer on the last line of stdout.

  python hf_tiny_models.py build   {"cases": [{"name", "family": "bert"|"roberta", "dir", "seed", "numLabels",
                                              "bareDir"?: str, "input": {"ids", "types"?, "mask", "batch", "seqLen"}}]}
      builds a random tiny BertForSequenceClassification / RobertaForSequenceClassification per case (seeded),
      saves it with save_pretrained(dir, safe_serialization=True) (and, when bareDir is given, the encoder alone
      with model.bert.save_pretrained(bareDir): no "bert." prefix, no classifier), and answers
      {name: {"logits": [...], "classifier": {tensor name: [values]}}} computed in eval mode, fp32.

  python hf_tiny_models.py peft    {"cases": [{"name", "dir", "adapterDir", "numLabels", "input": {...}}]}
      loads dir with AutoModelForSequenceClassification, then the adapter with PeftModel.from_pretrained, and
      answers {name: {"logits": [...], "nonzeroLoraB": n}} (n = lora_B tensors that are not all zero: peft
      initialises B to zero, so this counts the B tensors it really loaded from the file).
"""

import json
import sys

import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=40,
    hidden_act="gelu",
    # larger than the usual 0.02 so that activations and logits are far from 0
    initializer_range=0.2,
)


def build_model(case):
    torch.manual_seed(case["seed"])
    labels = case["numLabels"]
    extra = dict(num_labels=labels)
    if labels == 1:
        extra["problem_type"] = "regression"
    if case["family"] == "bert":
        cfg = BertConfig(**TINY, type_vocab_size=2, pad_token_id=0, layer_norm_eps=1e-12, **extra)
        model = BertForSequenceClassification(cfg)
    elif case["family"] == "roberta":
        cfg = RobertaConfig(
            **TINY, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **extra
        )
        model = RobertaForSequenceClassification(cfg)
    else:
        raise ValueError(f"case {case['name']}: unknown family {case['family']!r}")
    # transformers initialises LayerNorm to (1, 0) and every bias to 0: perturb them, so that a LayerNorm or bias
    # that is read from the wrong tensor (or not at all) changes the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def logits_of(model, inp):
    shape = (inp["batch"], inp["seqLen"])
    kwargs = dict(
        input_ids=torch.tensor(inp["ids"], dtype=torch.long).reshape(shape),
        attention_mask=torch.tensor(inp["mask"], dtype=torch.long).reshape(shape),
    )
    if inp.get("types") is not None:
        kwargs["token_type_ids"] = torch.tensor(inp["types"], dtype=torch.long).reshape(shape)
    with torch.no_grad():
        return model(**kwargs).logits.reshape(-1).tolist()


def build(cases):
    out = {}
    for case in cases:
        model = build_model(case)
        model.save_pretrained(case["dir"], safe_serialization=True)
        if case.get("bareDir"):
            if case["family"] != "bert":
                raise ValueError(f"case {case['name']}: bareDir is only for BERT")
            model.bert.save_pretrained(case["bareDir"], safe_serialization=True)
        classifier = {
            n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters() if n.startswith("classifier.")
        }
        out[case["name"]] = {"logits": logits_of(model, case["input"]), "classifier": classifier}
    return out


def peft(cases):
    from peft import PeftModel

    out = {}
    for case in cases:
        base = AutoModelForSequenceClassification.from_pretrained(
            case["dir"], num_labels=case["numLabels"], torch_dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, case["adapterDir"]).eval()
        loaded = sum(1 for n, p in model.named_parameters() if "lora_B" in n and bool((p != 0).any()))
        out[case["name"]] = {"logits": logits_of(model, case["input"]), "nonzeroLoraB": loaded}
    return out


def main():
    torch.set_num_threads(1)
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    request = json.loads(sys.stdin.read())
    if mode == "build":
        answer = build(request["cases"])
    elif mode == "peft":
        answer = peft(request["cases"])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} build|peft < request.json")
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
