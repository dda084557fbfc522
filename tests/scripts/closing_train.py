"""`nla train` with the tiny model's rollouts partly closed (`close_some_rollouts`), for the
multi-process tests: Lightning's launcher starts rank 1 by running this same script, so every
rank is patched alike.

With NLA_TEST_GRADIENTS=DIR, rank 0 also writes the gradients of every optimiser step (after
DDP's all-reduce and any clipping, before the update) to DIR/step-NNN.safetensors: what two
launches must agree on. Their weights can differ by a whole Adam step in a few elements whose
true gradient is near zero, where Adam normalises float rounding noise into a full update."""

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from nla_variants.cli import main
from nla_variants.variants.testing import close_some_rollouts


def record_gradients(directory: Path) -> None:
    step = torch.optim.AdamW.step
    count = [0]

    def recording_step(self, closure=None):
        if closure is not None:  # Lightning's automatic optimisation: backward runs in it
            with torch.enable_grad():
                closure()
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
            grads = {
                f"{g}.{i}": p.grad.detach().clone()
                for g, group in enumerate(self.param_groups)
                for i, p in enumerate(group["params"])
                if p.grad is not None
            }
            directory.mkdir(parents=True, exist_ok=True)
            save_file(grads, directory / f"step-{count[0]:03d}.safetensors")
        count[0] += 1
        return step(self)

    torch.optim.AdamW.step = recording_step


if __name__ == "__main__":
    close_some_rollouts()
    if os.environ.get("NLA_TEST_GRADIENTS"):
        record_gradients(Path(os.environ["NLA_TEST_GRADIENTS"]))
    sys.exit(main(sys.argv[1:]))
