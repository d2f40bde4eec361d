"""Run by test_distributed.py, as one process or under torchrun: train a small FNO, save its state."""

from __future__ import annotations

import sys

import torch
from operator_problems import helmholtz_1d
from sciml_plugins.neural_operators import FNO

from sciml.training import fit, world

if __name__ == "__main__":
    torch.set_num_threads(1)
    a, u = helmholtz_1d(40, 32, dtype=torch.float64)
    torch.manual_seed(0)
    model = FNO(1, 1, 1, width=8, modes=6, n_layers=2, projection=16).double()
    # batches of 10 split 5 / 5, and a last batch of 5 split 3 / 2 (uneven shards)
    result = fit(model, (a[:35], u[:35]), (a[35:], u[35:]), epochs=3, batch_size=10, lr=1e-2,
                 generator=torch.Generator().manual_seed(1), progress=False)
    rank, size = world()
    if rank == 0:
        torch.save({"state": result.model.state_dict(), "history": result.history,
                    "world_size": result.diagnostics["world_size"]}, sys.argv[1])
