"""What every PDE data set shares: the :class:`PDEData` container, per-sample seeding, the on-disk
cache and the process pool that fills it.

A generator module supplies a *recipe* (a dict of plain values that determines the data) and a
top-level function ``compute(recipe, start, stop) -> (a, u)`` returning float32 NumPy arrays for the
samples ``start <= i < stop``; :func:`generate` does the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sciml.io import SaveFileError, load_state, save_state
from sciml.progress import check_progress, progress_bar
from sciml.validation import check_bool, check_nonnegative_int, check_positive_int

__all__ = ["PDEData", "data_dir", "sample_generator", "generate"]

_KIND, _VERSION = "datasets.PDEData", 1

# How grid() places the points of each data set: "nodes" spans [0, 1] end to end (s points),
# "periodic" is x_j = j / s on the unit torus.
_GRID_KIND = {"darcy": "nodes", "burgers": "periodic", "navier_stokes": "periodic"}


@dataclass(frozen=True, eq=False)
class PDEData:
    """Input / output pairs of a PDE data set, channel-first float32.

    Attributes:
        a: inputs, ``(n, channels, *grid)``: ``(n, 1, s)`` in 1-D, ``(n, 1, s, s)`` in 2-D
            (``(n, input_steps, s, s)`` for :func:`~sciml.datasets.navier_stokes`).
        u: outputs, ``(n, channels, *grid)`` on the same grid.
        recipe: every parameter that determined the data (plain values; ``recipe["n"]`` is the
            number of samples generated, kept unchanged by indexing).

    Indexing (an int, a slice, a list, a NumPy array or an index / mask tensor) returns the subset
    as a :class:`PDEData` with the same recipe; an int keeps the sample dimension (length 1).
    """

    a: Tensor
    u: Tensor
    recipe: dict

    def __post_init__(self) -> None:
        for name in ("a", "u"):
            x = getattr(self, name)
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.ndim < 2:
                raise ValueError(f"{name} must have shape (n, channels, *grid), got {tuple(x.shape)}")
        if self.a.shape[0] != self.u.shape[0]:
            raise ValueError(f"a and u must hold the same number of samples, got {self.a.shape[0]} and "
                             f"{self.u.shape[0]}")
        if self.a.shape[2:] != self.u.shape[2:]:
            raise ValueError(f"a and u must be on the same grid, got shapes {tuple(self.a.shape)} and "
                             f"{tuple(self.u.shape)}")
        if not isinstance(self.recipe, dict):
            raise TypeError(f"recipe must be a dict, got {type(self.recipe).__name__}")

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def __getitem__(self, index: Any) -> PDEData:
        if isinstance(index, Tensor) and index.ndim == 0 and not index.is_floating_point() \
                and index.dtype != torch.bool:
            index = int(index)
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of range for {len(self)} samples")
            i %= len(self)
            index = slice(i, i + 1)
        return PDEData(self.a[index], self.u[index], self.recipe)

    def __repr__(self) -> str:
        return (f"PDEData({self.recipe.get('name', '?')!r}, n={len(self)}, a={tuple(self.a.shape)}, "
                f"u={tuple(self.u.shape)})")

    def grid(self) -> Tensor:
        """Coordinates of the grid points, ``(d, *grid)`` float32: ``grid()[0][i, j] = x_i``.

        Darcy uses the node grid ``x_i = i / (s - 1)`` (boundary included); Burgers and
        Navier-Stokes the periodic grid ``x_i = i / s``.
        """
        kind = _GRID_KIND.get(self.recipe.get("name"))
        if kind is None:
            raise ValueError(f"grid() does not know the data set {self.recipe.get('name')!r}")
        sizes = self.a.shape[2:]
        axes = [torch.linspace(0.0, 1.0, s, dtype=torch.float64) if kind == "nodes"
                else torch.arange(s, dtype=torch.float64) / s for s in sizes]
        return torch.stack(torch.meshgrid(*axes, indexing="ij")).to(torch.float32)


def data_dir() -> Path:
    """The cache folder: ``$SCIML_DATA_DIR`` if set, else ``~/.cache/sciml/datasets`` (not created)."""
    env = os.environ.get("SCIML_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sciml" / "datasets"


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The generator of sample ``index`` of a data set with ``seed``: a function of the pair only.

    NumPy's ``SeedSequence`` mixes ``(seed, index)`` into a 63-bit torch seed (no Python ``hash``,
    so the same on every machine and run).
    """
    state = np.random.SeedSequence([seed, index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def check_workers(workers: object) -> int | None:
    """``None`` or a positive int, else a ``TypeError`` / ``ValueError`` naming ``workers``."""
    return None if workers is None else check_positive_int("workers", workers)


def check_common(n: object, seed: object, cache: object, progress: object, workers: object) -> tuple[int, int]:
    """Check the arguments every generator takes; return ``(n, seed)`` as ints."""
    n = check_positive_int("n", n)
    seed = check_nonnegative_int("seed", seed)
    check_bool("cache", cache)
    check_progress(progress)
    check_workers(workers)
    return n, seed


def check_divides(name: str, resolution: int, solve_name: str, solve_resolution: int, *, nodes: bool) -> int:
    """The subsampling stride from ``solve_resolution`` to ``resolution``, or a ``ValueError`` naming both.

    Node grids (end points included) need ``(solve - 1) % (resolution - 1) == 0``; periodic grids
    ``solve % resolution == 0``.
    """
    lo, hi = (resolution - 1, solve_resolution - 1) if nodes else (resolution, solve_resolution)
    if resolution > solve_resolution or hi % lo:
        rule = "solve_resolution - 1 must be a multiple of resolution - 1" if nodes \
            else "solve_resolution must be a multiple of resolution"
        raise ValueError(f"{name}={resolution} cannot be subsampled from {solve_name}={solve_resolution}: {rule}")
    return hi // lo


# ----------------------------------------------------------------------------------------------------
# Cache


def _recipe_hash(recipe: dict) -> str:
    body = {k: v for k, v in recipe.items() if k != "n"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(recipe: dict, n: int | None = None) -> Path:
    """``data_dir() / "<name>-<hash>-n<n>.pt"``: the hash covers every recipe entry but ``n``."""
    n = recipe["n"] if n is None else n
    return data_dir() / f"{recipe['name']}-{_recipe_hash(recipe)}-n{n}.pt"


def _read(path: Path, recipe: dict) -> PDEData | None:
    """The first ``recipe["n"]`` samples stored at ``path``, or ``None`` (with a warning) if unusable."""
    try:
        _, payload = load_state(path, _KIND, {_VERSION})
        stored, a, u = payload["recipe"], payload["a"], payload["u"]
        same = isinstance(stored, dict) and {k: v for k, v in stored.items() if k != "n"} == \
            {k: v for k, v in recipe.items() if k != "n"}
        ok = same and isinstance(a, Tensor) and isinstance(u, Tensor) and a.dtype == u.dtype == torch.float32 \
            and a.shape[0] == u.shape[0] == stored.get("n") >= recipe["n"]
        if not ok:
            raise SaveFileError(f"{str(path)!r} holds another recipe or malformed arrays")
    except (SaveFileError, KeyError, TypeError, AttributeError) as exc:
        warnings.warn(f"ignoring the unusable dataset cache file {str(path)!r} (it will be regenerated): {exc}",
                      RuntimeWarning, stacklevel=5)
        return None
    n = recipe["n"]
    return PDEData(a[:n].clone() if a.shape[0] > n else a, u[:n].clone() if u.shape[0] > n else u, dict(recipe))


def _lookup(recipe: dict) -> PDEData | None:
    """Read the exact file, else the smallest cached superset (same recipe, larger ``n``)."""
    exact = cache_path(recipe)
    if exact.is_file():
        return _read(exact, recipe)
    prefix = f"{recipe['name']}-{_recipe_hash(recipe)}-n"
    larger = []
    for p in data_dir().glob(prefix + "*.pt") if data_dir().is_dir() else ():
        tail = p.name[len(prefix):-3]
        if tail.isdigit() and int(tail) > recipe["n"]:
            larger.append((int(tail), p))
    for _, p in sorted(larger):
        data = _read(p, recipe)
        if data is not None:
            return data
    return None


def _write(data: PDEData) -> None:
    path = cache_path(data.recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_state(tmp, _KIND, _VERSION, {"recipe": dict(data.recipe), "a": data.a, "u": data.u})
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


# ----------------------------------------------------------------------------------------------------
# Parallel, deterministic evaluation


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch and the BLAS libraries on one thread inside the block, restoring the counts after.

    Results of FFTs and element-wise kernels can change in the last bit with the thread count, so
    every sample is computed single-threaded, in the pool's workers and in-process alike.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_limits():
            yield
    finally:
        torch.set_num_threads(old)


def _blas_limits() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread count
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _init_worker() -> None:
    torch.set_num_threads(1)
    _blas_limits().__enter__()  # for the worker's whole life


def _pool_context() -> Any:
    # fork where it exists (Linux): no re-import of the caller's __main__ (spawn and forkserver
    # re-run an unguarded script) and workers start in milliseconds; torch's DataLoader does the same.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


Compute = Callable[[dict, int, int], tuple[np.ndarray, np.ndarray]]


def _run_block(compute: Compute, recipe: dict, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    with one_thread():
        return compute(recipe, start, stop)


def generate(recipe: dict, compute: Compute, *, block: int, cache: bool, progress: bool | None,
             workers: int | None) -> PDEData:
    """The data set of ``recipe``: from the cache if there, else computed (and cached if ``cache``).

    Samples are computed in fixed blocks ``[b * block, (b + 1) * block)`` whatever ``n`` and the
    number of workers, so sample ``i`` always goes through the same batched arithmetic: the last
    block is computed whole and cut to ``n``. Blocks run in a process pool of ``workers`` processes
    (``None``: one per available CPU, at most one per block; ``1``: in this process).
    """
    if cache:
        found = _lookup(recipe)
        if found is not None:
            return found
    n = recipe["n"]
    starts = list(range(0, n, block))
    workers = min(_available_cpus(), len(starts)) if workers is None else min(workers, len(starts))
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if workers == 1:
        with progress_bar(total=n, desc=recipe["name"], progress=progress, unit="sample") as bar:
            for s in starts:
                results[s] = _run_block(compute, recipe, s, s + block)
                bar.update(min(block, n - s))
    else:
        with ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_init_worker) as pool:
            futures = {pool.submit(compute, recipe, s, s + block): s for s in starts}  # forks here
            try:
                with progress_bar(total=n, desc=recipe["name"], progress=progress, unit="sample") as bar:
                    for fut in as_completed(futures):
                        results[futures[fut]] = fut.result()
                        bar.update(min(block, n - futures[fut]))
            except BaseException:  # a failed block or Ctrl-C: do not wait for the queued blocks
                for fut in futures:
                    fut.cancel()
                raise
    a = torch.from_numpy(np.concatenate([results[s][0] for s in starts])[:n])
    u = torch.from_numpy(np.concatenate([results[s][1] for s in starts])[:n])
    for name, x in (("a", a), ("u", u)):  # never return (or cache) overflowed data
        bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero()[:, 0].tolist()
        if bad:
            raise ValueError(f"{recipe['name']}: {name} came out non-finite in sample(s) {bad[:10]}: the parameters "
                             "are outside the range the solver handles in float32")
    data = PDEData(a.contiguous(), u.contiguous(), dict(recipe))
    if cache:
        try:
            _write(data)
        except OSError as exc:
            warnings.warn(f"could not write the dataset cache under {str(data_dir())!r}: {exc}", RuntimeWarning,
                          stacklevel=3)
    return data
