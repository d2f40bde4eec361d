"""The four plugin interfaces and the small result types they return.

Every plugin is a class deriving from exactly one of :class:`Sampler`, :class:`Operator`,
:class:`Surrogate` or :class:`Solver`. The common base :class:`Plugin` carries three class
attributes the registry checks when it loads a plugin:

* ``name``: the name users pass to :func:`sciml.load` (the entry-point name wins if they differ);
* ``kind``: set by the interface (``"sampler"``, ``"operator"``, ``"surrogate"``, ``"solver"``);
* ``api_version``: the version of this contract the plugin was written for
  (:data:`API_VERSION`; the registry refuses versions it does not support).

Contract shared by all kinds:

* **Devices and dtypes follow the inputs.** Tensors a plugin creates live on the device and have
  the floating dtype of the tensors it was given, unless a ``device=`` / ``dtype=`` argument says
  otherwise.
* **Seeding.** Every method that draws random numbers takes ``generator: torch.Generator | None``
  (keyword-only). Two calls with generators seeded alike return identical results on the same
  device; ``None`` uses torch's global generator.
* **Bad input** raises ``ValueError`` (wrong values, shapes, non-finite data) or ``TypeError``
  (wrong types) with a message naming the offending argument, before any heavy work starts.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "API_VERSION",
    "SUPPORTED_API_VERSIONS",
    "KINDS",
    "Plugin",
    "Sampler",
    "Operator",
    "Surrogate",
    "Solver",
    "Samples",
    "Solution",
    "interface_for",
]

#: Version of the plugin contract defined in this module.
API_VERSION: int = 1
#: Contract versions this release of sciml can load.
SUPPORTED_API_VERSIONS: frozenset[int] = frozenset({1})


class Plugin(abc.ABC):  # noqa: B024 (abstract by role; each interface adds its methods)
    """Common base of the four interfaces: identity and contract version of a plugin."""

    #: Name users load the plugin by (lower case, words joined by ``-``).
    name: ClassVar[str] = ""
    #: Plugin kind; fixed by each interface, never set by a plugin.
    kind: ClassVar[str] = ""
    #: Contract version the plugin implements.
    api_version: ClassVar[int] = API_VERSION


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Draws returned by :meth:`Sampler.sample`.

    Attributes:
        x: samples, shape ``(num_samples, dim)``, dtype and device of the target.
        n_evals: number of target log-density (energy) evaluations, counted per point.
        n_grad_evals: number of target gradient evaluations, counted per point.
        log_weights: importance log-weights, shape ``(num_samples,)``, or ``None`` when the
            samples are unweighted.
        log_z: estimate of the log normalising constant of the target, or ``None``.
        diverged: boolean mask of chains that became non-finite, shape ``(num_samples,)``, or
            ``None`` when the sampler does not track it. Diverged rows are kept, not dropped.
        diagnostics: further per-run figures (acceptance rates, step sizes, ...).
    """

    x: Tensor
    n_evals: int = 0
    n_grad_evals: int = 0
    log_weights: Tensor | None = None
    log_z: float | None = None
    diverged: Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """Number of draws (rows of ``x``)."""
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of each draw."""
        return int(self.x.shape[-1])


class Solution(abc.ABC):
    """What :meth:`Solver.solve` returns: an object that can be evaluated anywhere.

    Concrete solutions add what their method knows (derivatives, uncertainty, sampling); the base
    fixes how a result is evaluated and where its diagnostics live.

    Attributes:
        loss_history: objective value after each optimisation step (empty if none was run).
        diagnostics: scalar figures of the solve (residual norms, boundary error, wall time, ...).
    """

    def __init__(
        self,
        loss_history: list[float] | None = None,
        diagnostics: dict[str, Any] | None = None,
    ) -> None:
        self.loss_history: list[float] = list(loss_history or [])
        self.diagnostics: dict[str, Any] = dict(diagnostics or {})

    @abc.abstractmethod
    def __call__(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Evaluate the solution at ``x`` (shape ``(n, d)``); the result has leading dim ``n``."""


# --------------------------------------------------------------------------------------------
# The four interfaces
# --------------------------------------------------------------------------------------------


class Sampler(Plugin):
    """Draws samples from an unnormalised density.

    Hyper-parameters go to ``__init__`` (which only stores them); the target goes to
    :meth:`sample`. A target is anything with ``log_prob(x: Tensor (n, d)) -> Tensor (n,)``: a
    :mod:`sciml.targets` target or a torch / pyro ``Distribution`` with a 1-D event shape.
    """

    kind: ClassVar[str] = "sampler"

    @abc.abstractmethod
    def sample(
        self, target: Any, num_samples: int, *, generator: torch.Generator | None = None
    ) -> Samples:
        """Draw ``num_samples`` points from ``target``.

        Args:
            target: the density to sample (see the class docstring).
            num_samples: number of returned draws, a positive integer.
            generator: source of randomness; equal seeds give equal results.

        Returns:
            :class:`Samples` with ``x`` of shape ``(num_samples, dim)``.
        """


class Operator(Plugin, nn.Module):
    """A learned map between function spaces, discretised on grids.

    ``forward(a)`` takes channel-first grids ``(batch, in_channels, *grid)`` and returns
    ``(batch, out_channels, *grid)`` on the same grid (resolution-agnostic operators accept any
    grid size). Training is not part of the model; checkpoints are ``state_dict`` s.

    Attributes:
        in_channels: number of input channels.
        out_channels: number of output channels.
        n_dims: number of grid dimensions.
    """

    kind: ClassVar[str] = "operator"
    in_channels: int
    out_channels: int
    n_dims: int

    def __init__(self) -> None:
        nn.Module.__init__(self)

    @abc.abstractmethod
    def forward(self, a: Tensor) -> Tensor:
        """Map input functions ``(B, in_channels, *grid)`` to outputs ``(B, out_channels, *grid)``."""


class Surrogate(Plugin):
    """A fast learned stand-in for an expensive inference procedure.

    ``fit`` trains and returns ``self``; ``predict`` answers new queries deterministically. A
    surrogate that can be saved exposes ``state_dict()`` / ``load_state_dict(state)`` (an
    ``nn.Module`` surrogate inherits them), so that a fitted copy is restored by constructing it
    with the same arguments and loading the state.
    """

    kind: ClassVar[str] = "surrogate"

    @abc.abstractmethod
    def fit(self, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Surrogate:
        """Train on data or a simulator and return ``self``."""

    @abc.abstractmethod
    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Answer queries with the fitted surrogate (deterministic given its state)."""


class Solver(Plugin):
    """Solves a problem instance (a PDE, a bridge between two distributions, ...).

    Hyper-parameters go to ``__init__``; ``solve`` takes the problem (its exact arguments are the
    plugin's to define and document) and a keyword-only ``generator``, and returns a
    :class:`Solution`.
    """

    kind: ClassVar[str] = "solver"

    @abc.abstractmethod
    def solve(self, *problem: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Solution:
        """Solve the problem and return a :class:`Solution`."""


#: Interface class for each kind.
KINDS: dict[str, type[Plugin]] = {
    "sampler": Sampler,
    "operator": Operator,
    "surrogate": Surrogate,
    "solver": Solver,
}


def interface_for(obj: Any) -> type[Plugin] | None:
    """Return the interface ``obj`` (a class) derives from, or ``None``."""
    if not isinstance(obj, type):
        return None
    for interface in KINDS.values():
        if issubclass(obj, interface):
            return interface
    return None
