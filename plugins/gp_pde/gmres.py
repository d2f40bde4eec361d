"""Right-preconditioned restarted GMRES on grid tensors (the Newton systems of the fast-diagonalisation path)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["gmres"]


def gmres(apply: Callable[[Tensor], Tensor], b: Tensor, precond: Callable[[Tensor], Tensor], tol: float,
          restart: int, max_iter: int) -> tuple[Tensor, int]:
    """Solve ``apply(x) = b`` to relative residual ``tol``; returns ``(x, iterations)`` (at most ``max_iter``)."""
    x = torch.zeros_like(b)
    bnorm = float(b.norm())
    if bnorm == 0.0:
        return x, 0
    done = 0
    while done < max_iter:
        r = b - apply(x)
        beta = float(r.norm())
        if beta <= tol * bnorm:
            break
        V = [r / beta]
        Z = []
        H = torch.zeros(restart + 1, restart, dtype=b.dtype, device=b.device)
        k_used = 0
        for k in range(restart):
            z = precond(V[k])
            Z.append(z)
            w = apply(z)
            for i in range(k + 1):
                H[i, k] = (w * V[i]).sum()
                w = w - H[i, k] * V[i]
            H[k + 1, k] = w.norm()
            k_used = k + 1
            done += 1
            e1 = torch.zeros(k + 2, dtype=b.dtype, device=b.device)
            e1[0] = beta
            y = torch.linalg.lstsq(H[:k + 2, :k + 1], e1[:, None], driver="gels").solution[:, 0]
            res = float((H[:k + 2, :k + 1] @ y - e1).norm())
            if res <= tol * bnorm or float(H[k + 1, k]) <= 1e-300 or done >= max_iter:
                break
            V.append(w / H[k + 1, k])
        x = x + sum(y[i] * Z[i] for i in range(k_used))
        if res <= tol * bnorm:
            break
    return x, done
