"""Learn the Darcy flow solution operator with a neural operator, then evaluate it at twice the resolution.

``--model fno | mgno | lsm``. Generates a small Darcy set (``sciml.datasets.darcy``: piecewise-constant
permeability 12 / 3, solved at 421^2), trains the chosen operator plugin with ``sciml.training.fit`` at a coarse grid (43^2 by
default), reports the test relative L2 error there and on the same test fields sampled at twice the
resolution (85^2), and plots input / truth / prediction / error at the fine grid.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run darcy_operator", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--model", default="fno", choices=("fno", "mgno", "lsm"), help="operator plugin (default fno)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=43, help="training grid (default 43)")
    parser.add_argument("--solve-resolution", type=int, default=421)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--width", type=int, default=None, help="hidden channels (default: the model's own)")
    parser.add_argument("--modes", type=int, default=12, help="Fourier modes (fno only)")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    fine = 2 * (ns.resolution - 1) + 1
    if ns.n_train < 2 or ns.n_test < 1 or ns.epochs < 1:
        parser.error("--n-train must be >= 2, --n-test and --epochs >= 1")
    if (ns.solve_resolution - 1) % (fine - 1):
        parser.error(f"--solve-resolution - 1 must be a multiple of 2 (--resolution - 1) = {fine - 1}")

    from sciml_solvers._figures import pyplot, save_figure

    import sciml
    from sciml.datasets import darcy
    from sciml.training import evaluate, fit

    kw = {"solve_resolution": ns.solve_resolution}
    t0 = time.perf_counter()
    train = darcy(ns.n_train, ns.resolution, seed=ns.seed, **kw)
    test, test_fine = (darcy(ns.n_test, r, seed=ns.seed + 1, **kw) for r in (ns.resolution, fine))
    data_s = time.perf_counter() - t0
    torch.manual_seed(ns.seed)
    kwargs = {} if ns.width is None else {"width": ns.width}
    if ns.model == "fno":
        kwargs["modes"] = ns.modes
    model = sciml.load("operator", ns.model)(in_channels=1, out_channels=1, n_dims=2, **kwargs)
    result = fit(model, train, test, epochs=ns.epochs, generator=torch.Generator().manual_seed(ns.seed))
    coarse, fine_err = result.test_error, evaluate(result.model, test_fine)
    print(f"darcy_operator: {ns.model}, {ns.n_train} train / {ns.n_test} test fields (solved at "
          f"{ns.solve_resolution}^2, {data_s:.0f} s incl. cache), {ns.epochs} epochs in "
          f"{result.diagnostics['wall_time_s']:.0f} s, {result.diagnostics['parameters']:,} parameters")
    print()
    print("| grid | test relative L2 |")
    print("| --- | --- |")
    print(f"| {ns.resolution}^2 (training) | {coarse:.4f} |")
    print(f"| {fine}^2 (twice) | {fine_err:.4f} |")

    with torch.no_grad():
        pred = result.model(test_fine.a[:1])[0, 0]
    truth = test_fine.u[0, 0]
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    panels = [("permeability a", test_fine.a[0, 0]), ("solution u", truth), (f"{ns.model} at {fine}^2", pred),
              ("error", pred - truth)]
    for ax, (title, field) in zip(axes, panels):
        im = ax.imshow(field.T.numpy(), origin="lower", extent=(0, 1, 0, 1),
                       cmap="RdBu_r" if title == "error" else "viridis")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "darcy_operator", dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
