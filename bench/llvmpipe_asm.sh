#!/usr/bin/env bash
# Dumps the machine code that llvmpipe/lavapipe JIT-compiled for the WGSL kernels of a running process and
# prints the instruction mix of its largest loops (a kernel's main loop is usually the largest one), so that a
# kernel change can be judged by the code it produces, not only by a noisy timing.
#
#   bash bench/llvmpipe_asm.sh PID [OUT_DIR] [LOOPS]
#
# PID: a Deno process that is running the kernel of interest right now (e.g. `deno task bench gemm --reps 50`
# in another shell: `pgrep -f 'bench/main.ts gemm'`). OUT_DIR (default /tmp/llvmpipe_asm) receives every
# anonymous executable mapping as jit_<address>.bin and its disassembly as jit_<address>.s. LOOPS (default 3):
# how many of the largest loops to summarise. Needs gdb, objdump (binutils) and python3; attaching needs
# ptrace rights over PID (root, or the same user with kernel.yama.ptrace_scope 0).
#
# What the summary means: "fp" counts vmulps/vaddps/vfmadd*ps (8-lane single-precision arithmetic), the rest is
# overhead: per-lane address extraction and loads (vpextrd, movslq, vinserti128: llvmpipe's texel and buffer
# gathers), transposes (vpunpck*), bounds and execution masks (vpandn, vblendvps) and register spills
# (vmovaps/vmovdqa to and from the stack). See bench/NOTES.md entry 29 for the texture GEMM's.
set -euo pipefail
pid=${1:?usage: bash bench/llvmpipe_asm.sh PID [OUT_DIR] [LOOPS]}
out=${2:-/tmp/llvmpipe_asm}
loops=${3:-3}
for tool in gdb objdump python3; do
  command -v "$tool" >/dev/null || { echo "llvmpipe_asm: $tool not found (apt-get install gdb binutils python3)" >&2; exit 2; }
done
[ -r "/proc/$pid/maps" ] || { echo "llvmpipe_asm: no process $pid" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/jit_*.bin "$out"/jit_*.s
# JIT code lives in anonymous (no file name) executable mappings.
n=0
while read -r range perms _ _ _ path; do
  [[ "$perms" == r-x* && -z "${path:-}" ]] || continue
  start=${range%-*} end=${range#*-}
  gdb -p "$pid" -batch -ex "dump binary memory $out/jit_$start.bin 0x$start 0x$end" >/dev/null 2>&1 || {
    echo "llvmpipe_asm: gdb could not read $range of $pid (ptrace rights?)" >&2
    exit 2
  }
  objdump -D -b binary -m i386:x86-64 --adjust-vma="0x$start" "$out/jit_$start.bin" >"$out/jit_$start.s"
  n=$((n + 1))
done <"/proc/$pid/maps"
[ "$n" -gt 0 ] || { echo "llvmpipe_asm: $pid has no anonymous executable mappings (not on llvmpipe?)" >&2; exit 2; }
python3 - "$out" "$loops" <<'PY'
import collections, glob, re, sys
out, want = sys.argv[1], int(sys.argv[2])
loops = []
for f in sorted(glob.glob(f"{out}/jit_*.s")):
    ins = []
    for line in open(f):
        # "  addr:<TAB>bytes<TAB>mnemonic operands"; a long instruction's extra bytes come on a line of their own
        parts = line.rstrip("\n").split("\t")
        m = re.match(r"\s*([0-9a-f]+):$", parts[0])
        if m and len(parts) >= 3 and parts[2].strip():
            ins.append((int(m.group(1), 16), parts[2].strip()))
    for addr, text in ins:
        j = re.match(r"j\w+\s+0x([0-9a-f]+)", text)
        if j and int(j.group(1), 16) < addr:  # a backward branch closes a loop
            lo = int(j.group(1), 16)
            loops.append((lo, addr, [t for a, t in ins if lo <= a <= addr]))
loops.sort(key=lambda l: -len(l[2]))
fp_ops = re.compile(r"v(mul|add|sub)ps|vfn?m(add|sub)\d+ps")
print(f"{len(loops)} loops in {len(glob.glob(out + '/jit_*.s'))} JIT mappings; the {min(want, len(loops))} largest:")
for lo, hi, body in loops[:want]:
    mix = collections.Counter(t.split()[0] for t in body)
    fp = sum(v for k, v in mix.items() if fp_ops.fullmatch(k))
    spills = sum(1 for t in body if re.match(r"vmov(aps|dqa|ups)", t) and "(%rsp)" in t)
    print(f"loop 0x{lo:x}-0x{hi:x}: {len(body)} instructions, fp {fp} ({100 * fp / len(body):.0f} %), "
          f"stack moves {spills}")
    print("  " + " ".join(f"{k} {v}" for k, v in mix.most_common(16)))
PY
