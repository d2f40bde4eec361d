"""A triple-wise task learned by one tensor-attention layer and not by one ordinary attention layer.

Each sequence holds ``--length`` tokens ``a_i`` in ``Z_M`` (``M = --modulus``); the label of position
``i`` is whether two *other* positions ``j != k`` complete it: ``a_i + a_j + a_k = 0 (mod M)``
(about half the labels are 1 at the defaults). Both models embed the tokens in ``--width``
dimensions, add one learned "none" key (where attention goes when nothing matches), apply one
attention layer (tensor attention over pairs ``(j, k)``, masked to ``j != k``, both ``!= i``; or
ordinary softmax attention over ``j != i``) and classify each position with the same small MLP
on ``(embedding, attention output)``. Trained with Adam (cosine-decayed learning rate) on fresh random
sequences; the figure shows
both learning curves (accuracy on a fixed held-out set of sequences).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class _Model(nn.Module):
    def __init__(self, modulus: int, width: int, triple: bool) -> None:
        super().__init__()
        self.triple = triple
        self.embed = nn.Embedding(modulus, width)
        self.none = nn.Parameter(torch.randn(1, 1, width) * 0.1)  # the key attended when nothing matches
        heads = 5 if triple else 3  # q, k1, k2, v1, v2 or q, k, v
        self.proj = nn.Linear(width, heads * width, bias=False)
        self.none_proj = nn.Linear(width, heads * width, bias=False)
        self.readout = nn.Sequential(nn.Linear(2 * width, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, tokens: Tensor) -> Tensor:
        from sciml.kernels import tensor_attention

        x = self.embed(tokens)                                # (B, L, w)
        b, length, w = x.shape
        parts = self.proj(x).split(w, -1)
        none = self.none_proj(self.none).split(w, -1)
        keys = [torch.cat([p, n.expand(b, 1, w)], 1) for p, n in zip(parts[1:], none[1:])]  # L + 1 keys
        q = parts[0]
        eye = torch.eye(length + 1, dtype=torch.bool, device=x.device)[:length]           # (L, L + 1): j == i
        if self.triple:
            other = ~eye                                                                  # j != i
            mask = other[:, :, None] & other[:, None, :] & ~torch.eye(length + 1, dtype=torch.bool, device=x.device)[None]
            mask[:, length, length] = True                                                # (none, none)
            out = tensor_attention(q, keys[0], keys[1], keys[2], keys[3], scale=1.0, mask=mask)
        else:
            logits = (q @ keys[0].mT).masked_fill(eye, float("-inf"))
            out = torch.softmax(logits, -1) @ keys[1]
        return self.readout(torch.cat([x, out], -1)).squeeze(-1)


def _labels(tokens: Tensor, modulus: int) -> Tensor:
    """``y[b, i] = exists j != k, both != i: a_i + a_j + a_k = 0 mod M``."""
    length = tokens.shape[1]
    total = (tokens[:, :, None, None] + tokens[:, None, :, None] + tokens[:, None, None, :]) % modulus == 0
    idx = torch.arange(length)
    distinct = (idx[:, None, None] != idx[None, :, None]) & (idx[:, None, None] != idx[None, None, :]) \
        & (idx[None, :, None] != idx[None, None, :])
    return (total & distinct).flatten(2).any(-1).float()


def _train(triple: bool, ns: argparse.Namespace, test: tuple[Tensor, Tensor]) -> list[float]:
    torch.manual_seed(ns.seed)
    model = _Model(ns.modulus, ns.width, triple).double()
    opt = torch.optim.Adam(model.parameters(), lr=ns.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ns.steps)
    g = torch.Generator().manual_seed(ns.seed + 1)
    curve = []
    for step in range(ns.steps):
        tokens = torch.randint(0, ns.modulus, (ns.batch, ns.length), generator=g)
        loss = nn.functional.binary_cross_entropy_with_logits(model(tokens), _labels(tokens, ns.modulus))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % ns.every == 0 or step == ns.steps - 1:
            with torch.no_grad():
                curve.append(float(((model(test[0]) > 0).double() == test[1]).double().mean()))
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run triple_attention", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--length", type=int, default=5)
    parser.add_argument("--modulus", type=int, default=11)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam, cosine-decayed")
    parser.add_argument("--every", type=int, default=100, help="steps between test accuracies")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    if min(ns.length - 2, ns.modulus - 1, ns.width, ns.steps, ns.batch, ns.every) < 1 or not ns.lr > 0:
        parser.error("--length >= 3, --modulus >= 2, and --width, --steps, --batch, --every, --lr positive")

    from sciml_solvers._figures import pyplot, save_figure

    g = torch.Generator().manual_seed(ns.seed + 2)
    tokens = torch.randint(0, ns.modulus, (2000, ns.length), generator=g)
    test = (tokens, _labels(tokens, ns.modulus).double())
    base = max(float(test[1].mean()), 1 - float(test[1].mean()))
    curves = {name: _train(triple, ns, test) for name, triple in (("tensor attention", True), ("attention", False))}
    print(f"| model | test accuracy after {ns.steps} steps | best |")
    print("| --- | --- | --- |")
    for name, curve in curves.items():
        print(f"| {name} | {curve[-1]:.3f} | {max(curve):.3f} |")
    print(f"| majority label | {base:.3f} | |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [min(i * ns.every, ns.steps - 1) for i in range(len(next(iter(curves.values()))))]
    for name, curve in curves.items():
        ax.plot(steps, curve, label=f"one {name} layer")
    ax.axhline(base, color="grey", ls=":", label="majority label")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"a_i + a_j + a_k = 0 mod {ns.modulus}, {ns.length} tokens, width {ns.width}")
    ax.legend()
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "triple_attention")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
