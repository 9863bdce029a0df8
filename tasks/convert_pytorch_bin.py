"""Converts a Hugging Face `pytorch_model.bin` (a PyTorch pickle of the state dict) to `model.safetensors`.

Used by `deno task fetch-model` only when a package ships no safetensors file. Needs torch (Debian's
`/usr/bin/python3` has it); the safetensors file is written by hand (8-byte little-endian header length, JSON
header, raw little-endian data), so the `safetensors` package is not needed. Floating tensors are stored as F32,
integer tensors (e.g. `position_ids`) as I64; names are kept as they are. Written to OUT.tmp-<pid>, then renamed.

    python3 tasks/convert_pytorch_bin.py IN/pytorch_model.bin OUT/model.safetensors
"""
import json
import os
import struct
import sys


def main(src, dst):
    import torch

    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        sys.exit(f"{src}: expected a state dict of tensors")
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name].detach().contiguous()
        if t.is_floating_point():
            t, dtype = t.to(torch.float32), "F32"
        elif t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
            t, dtype = t.to(torch.int64), "I64"
        else:
            sys.exit(f"{src}: tensor {name} has dtype {t.dtype}, which this converter does not handle")
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    tmp = f"{dst}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, dst)
    print(f"wrote {dst}: {len(blobs)} tensors, {offset} bytes of data")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 tasks/convert_pytorch_bin.py IN/pytorch_model.bin OUT/model.safetensors")
    main(sys.argv[1], sys.argv[2])
