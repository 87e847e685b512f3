"""One rank of a two-process gloo run (started by torchrun from test_run_cli.py) of the plain torch
backend's data parallelism without DDP: ranks that start from different weights and train on
different rows must end equal (rank 0's start, averaged gradients) and with the weights of one
process training on both ranks' rows."""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from ebert_modelzoo.config.params import PrecisionConfig
from ebert_modelzoo.training.backends import BackendOptions
from ebert_modelzoo.training.backends.torch import TorchBackend, end_process
from ebert_modelzoo.training.step import make_train_step


class Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((self.linear(batch["x"]) - batch["y"]) ** 2).mean()


def main() -> int:
    backend = TorchBackend(BackendOptions())
    torch.manual_seed(0)
    reference = Regression()  # one process, the global batch of every step
    torch.manual_seed(backend.rank)  # different starting weights on each rank
    model = backend.setup_model(Regression())
    torch.manual_seed(1)
    batches = [{"x": torch.randn(4, 3), "y": torch.randn(4, 1)} for _ in range(3)]
    step = make_train_step(backend, model, torch.optim.SGD(model.parameters(), lr=0.1), [], None,
                           PrecisionConfig(max_gradient_norm=None))
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    rows = slice(2 * backend.rank, 2 * backend.rank + 2)  # this rank's half of every batch
    for batch in batches:
        step({key: value[rows] for key, value in batch.items()})
        reference(batch).backward()
        reference_optimizer.step()
        reference_optimizer.zero_grad()
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(backend.world_size)]
    dist.all_gather(gathered, weights)
    backend.close()
    assert all(torch.equal(w, gathered[0]) for w in gathered), gathered
    expected = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6)
    print(f"rank {backend.rank} ok", flush=True)
    return 0


if __name__ == "__main__":
    status = main()
    end_process(status)  # as run.py does after a gloo run
    sys.exit(status)
