"""Would ``torch.compile`` speed up fine-tuning on the CPU? Eager against compiled training steps, in one process.

The candidate speed-up for long budgets: inductor fuses the BatchNorm / ReLU6 element-wise work around each
convolution, which eager PyTorch runs as separate passes over memory. It costs a compilation first (tens of seconds
on 2 cores), so it could only pay where a run is long. One process, the real model (EfficientNet-Lite0 with a
10-class head, ``channels_last``, batch 64, the full strategy's trainable parameters and BatchNorm modes, AdamW),
the same batch for both; the eager and the compiled step run in alternate rounds, so a machine's drift hits both
alike and the ratio is what counts::

    flock /tmp/shoulders-heavy.lock python benchmarks/compile.py --sizes 64 112

Results: ``results/compile.json`` (a row per size: images/s of each mode, the compiled/eager ratio, the first
compiled step's seconds, the machine; a size measured again replaces its row).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks import common  # noqa: E402

RESULT = common.RESULTS_DIR / "compile.json"


def _model() -> nn.Module:
    from shoulders.config import StrategyConfig
    from shoulders.models import create_transfer_model
    from shoulders.strategies import ALL_BLOCKS, Phase, create_strategy

    torch.manual_seed(0)
    model, _ = create_transfer_model("tf_efficientnet_lite0", num_classes=10, pretrained=False)
    strategy = create_strategy(StrategyConfig(name="full"))
    strategy.apply_phase(model, Phase("finetune", 1, ALL_BLOCKS))
    strategy.set_train_mode(model)
    return model.to(memory_format=torch.channels_last)


def _step_fn(net: nn.Module, params: list[nn.Parameter], x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    criterion = nn.CrossEntropyLoss()

    def step() -> float:
        start = time.perf_counter()
        loss = criterion(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start
    return step


def measure(size: int, rounds: int, steps: int) -> dict[str, Any]:
    torch._dynamo.reset()  # a fresh compilation per size: a second size would recompile with dynamic shapes
    model = _model()
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(common.BATCH_SIZE, 3, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (common.BATCH_SIZE,), generator=generator)
    eager = _step_fn(model, params, x, y)
    compiled = _step_fn(torch.compile(model), params, x, y)
    eager()
    first = compiled()  # compiles forward and backward
    compiled()
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for name, step in (("eager", eager), ("compiled", compiled)):
            rates[name].append(common.BATCH_SIZE * steps / sum(step() for _ in range(steps)))
    eager_rate, compiled_rate = (statistics.median(rates[k]) for k in ("eager", "compiled"))
    return {"size": size, "eager": round(eager_rate, 1), "compiled": round(compiled_rate, 1),
            "ratio": round(compiled_rate / eager_rate, 3), "first_compiled_step_seconds": round(first, 1),
            "rounds": rounds, "steps_per_round": steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 112])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4, help="training steps per round and mode")
    args = p.parse_args(argv)
    rows = []
    for size in args.sizes:
        row = measure(size, args.rounds, args.steps)
        print(f"{size:>4} px  eager {row['eager']:6.1f}  compiled {row['compiled']:6.1f} img/s  ratio "
              f"{row['ratio']:.2f}  (first compiled step {row['first_compiled_step_seconds']:.0f} s)", flush=True)
        rows.append({**row, "machine": common.machine(), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "commit": common.git_commit()})
    kept = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    rows = [r for r in kept if r["size"] not in args.sizes] + rows  # a size measured again replaces its row
    RESULT.write_text(json.dumps({"benchmark": "compile", "rows": sorted(rows, key=lambda r: r["size"])}, indent=1)
                      + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
