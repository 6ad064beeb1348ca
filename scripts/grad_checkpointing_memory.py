"""Peak memory of EfficientNet training steps with and without gradient checkpointing
(train.grad_checkpointing), each in a process of its own: the README's figures.

    python scripts/grad_checkpointing_memory.py [--model efficientnet_b4] [--res 380]
           [--batch-size 8] [--steps 2]

On the CPU the peak is the process's maximum resident memory (glibc's default allocator, which
returns freed memory); on CUDA it is torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import torch
from enet.models import create_model
name, res, batch, steps, checkpointed, device = sys.argv[1:7]
res, batch, steps, device = int(res), int(batch), int(steps), torch.device(device)
torch.manual_seed(0)
model = create_model(name, 1000).to(device, memory_format=torch.channels_last).train()
model.stages.checkpointed = checkpointed == "1"
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(batch, 3, res, res, device=device).to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (batch,), device=device)
times = []
for _ in range(steps):
    start = time.perf_counter()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(json.dumps({"peak_bytes": peak, "step_s": min(times)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b4")
    parser.add_argument("--res", type=int, default=380)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for checkpointed in (False, True):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, args.model, str(args.res), str(args.batch_size),
             str(args.steps), "1" if checkpointed else "0", args.device],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(dict(checkpointed=checkpointed, **result, wall_s=time.perf_counter() - start))
    base, ckpt = rows
    print(f"{args.model}, {args.res} px, batch {args.batch_size}, fp32, {args.device}")
    for r in rows:
        print(
            f"  grad_checkpointing={str(r['checkpointed']):5s}  peak {r['peak_bytes'] / 2**30:.2f} "
            f"GiB  fastest step {r['step_s']:.1f} s"
        )
    print(
        f"  ratio: memory {ckpt['peak_bytes'] / base['peak_bytes']:.2f}x, "
        f"step time {ckpt['step_s'] / base['step_s']:.2f}x"
    )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
