"""The ``distribution-transformer`` surrogate: a prior and a data set in, an approximate posterior out."""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributions import Distribution

from sciml.interfaces import Surrogate
from sciml.io import load_module_state, load_state, reading, save_state
from sciml.training import fit_simulated
from sciml.validation import check_choice, check_device, check_positive_int

from .mixtures import Mixture
from .network import DTNetwork
from .tasks import TASKS, Task

__all__ = ["DistributionTransformer"]

_SAVE_KIND = "distribution_transformer.Model"
_SAVE_VERSION = 3  # 2: the mean map (network.DTNetwork.mean_map) and scale-free lower features; 3: their asinh


def _task(task: object) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return TASKS[check_choice("task", task, tuple(TASKS))]()
    raise TypeError(f"task must be a Task or one of {', '.join(TASKS)}, got {type(task).__name__}")


class DistributionTransformer(Surrogate, nn.Module):
    """Amortised Bayesian inference (Whittle et al. 2025): a transformer that maps a prior and a data
    set to a Gaussian-mixture posterior, trained once by simulation on a :class:`Task`.

    ``DT(task="gmm-gaussian", d_model=64, heads=8, layers=6, ffn=256)`` (the paper's configuration;
    ``task`` a :class:`Task` or a ready-made task's name) builds the network for the task; ``fit()``
    trains it (``fit(other_task)`` starts a new network for that task); ``predict(prior, z, **extras)``
    returns a batch ``(B,)`` torch distribution (a
    ``MixtureSameFamily`` of ``MultivariateNormal`` s, through the task's bijection if it has one);
    ``DT.pretrained(name)`` loads a shipped model, ``DT.pretrained()`` lists them.
    """

    name: ClassVar[str] = "distribution-transformer"

    def __init__(self, task: object = "gmm-gaussian", *, d_model: int = 64, heads: int = 8, layers: int = 6,
                 ffn: int = 256) -> None:
        super().__init__()
        self.config = {"d_model": check_positive_int("d_model", d_model), "heads": check_positive_int("heads", heads),
                       "layers": check_positive_int("layers", layers), "ffn": check_positive_int("ffn", ffn)}
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.diagnostics: dict[str, Any] = {}
        self.register_buffer("steps_trained", torch.zeros((), dtype=torch.long))
        self._build(_task(task))

    def _build(self, task: Task) -> None:
        self.task = task
        self.network = DTNetwork(task.dim, task.obs_features, task.context_features, prior_params=task.prior_params,
                                 components=task.components[1] if task.prior_params else 0, **self.config)
        self.steps_trained.zero_()

    # -- training ---------------------------------------------------------------------------------

    def loss(self, network: nn.Module, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Mean over a fresh simulated batch of ``-log q(theta | prior, z)`` for draws ``theta`` of the
        posterior (the expected KL to it, up to the posterior's entropy, a constant), plus the
        prior-consistency term ``-log q(theta' | prior, no data)`` for draws ``theta'`` of the prior."""
        device = next(network.parameters()).device
        p = self.task.simulate(batch_size, generator)
        to = {"device": device}
        prior, z, extras = _move(p.prior, to), p.z.to(**to), {k: v.to(**to) for k, v in p.extras.items()}
        total = torch.zeros((), device=device)
        for data, theta in ((z, p.theta), (z[:, :0], p.prior_theta)):  # posterior term, prior-consistency term
            enc = self.task.encode(prior, data, extras)
            mix = enc.undo(network(enc.prior, enc.obs, enc.context))
            total = total - mix.log_prob(theta.to(**to).transpose(0, 1)).mean()
        return total

    def fit(self, task: object = None, *, num_steps: int = 4000, batch_size: int = 1000,
            lr: float = 1e-3, weight_decay: float = 1e-2, warmup: float = 0.05,
            checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
            device: torch.device | str | None = None, generator: torch.Generator | None = None,
            progress: bool | None = None) -> DistributionTransformer:
        """Train on fresh simulated batches of the model's task (or of ``task``, a :class:`Task` or a
        ready-made task's name: another task than the model's starts a new network) with AdamW and a
        warm-up / cosine schedule (:func:`sciml.training.fit_simulated`: checkpoints, ``torchrun``);
        a trained model continues from its weights."""
        if task is not None:
            task = _task(task)
            if task.name != self.task.name:
                self._build(task)
            self.task = task
        device = check_device("device", device)
        if device is not None:
            self.to(device)
        result = fit_simulated(self.network, self.loss, num_steps=num_steps, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, warmup=warmup, checkpoint=checkpoint, resume=resume,
                               generator=generator, progress=progress)
        self.diagnostics = result.diagnostics
        self.steps_trained += result.diagnostics["num_steps"] - result.diagnostics["resumed_from_step"]
        return self

    # -- inference --------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, prior: Any, z: object, **extras: object) -> Distribution:
        """The approximate posteriors of a batch of ``B`` (prior, data set) pairs (task-specific
        arguments: ``gmm-gaussian`` takes ``noise_scale=``); float64, on the model's device."""
        if int(self.steps_trained) == 0:
            raise RuntimeError("this model is not trained: call fit() or load a pretrained one")
        prior, z, extras = self.task.inputs(prior, z, **extras)
        if z.shape[0] == 0:
            raise ValueError("the batch is empty (B = 0): give at least one (prior, data set) pair")
        device = next(self.network.parameters()).device
        dtype = next(self.network.parameters()).dtype
        to = {"device": device, "dtype": torch.float64}
        # standardise in float64 and only then cast: data far from the origin (1e6 and more) keep their
        # digits through the centring, which float32 inputs would lose
        enc = self.task.encode(_move(prior, to), z.to(**to), {k: v.to(**to) for k, v in extras.items()})
        was = self.network.training
        self.network.eval()
        out = self.network(enc.prior.to(dtype), enc.obs.to(dtype), enc.context.to(dtype))
        self.network.train(was)
        mix = enc.undo(out.to(torch.float64))
        _check_finite_output(mix)
        return self.task.output(mix)

    # -- save / load ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the configuration, the task (name and settings) and the weights."""
        save_state(path, _SAVE_KIND, _SAVE_VERSION, {"config": self.config, "task": self.task.config(),
                                                      "state": {k: v.cpu() for k, v in self.state_dict().items()}})

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: torch.device | str | None = None,
             task: Task | str | None = None) -> DistributionTransformer:
        """A saved model (``task``: the :class:`Task` it was trained on, or a ready-made task's name;
        needed unless it is a ready-made one)."""
        task = None if task is None else _task(task)
        _, payload = load_state(path, _SAVE_KIND, (_SAVE_VERSION,), map_location=map_location)
        with reading(path):
            saved = payload["task"]
            if task is None:
                if saved["name"] not in TASKS:
                    raise ValueError(f"it was trained on the task {saved['name']!r}: pass task= to load it")
                task = TASKS[saved["name"]](posterior_draws=saved["posterior_draws"])
            elif task.name != saved["name"]:
                raise ValueError(f"it was trained on the task {saved['name']!r}, not {task.name!r}")
            model = cls(task, **payload["config"])
            load_module_state(model, payload["state"])
        model.eval()
        return model

    @classmethod
    def pretrained(cls, name: str | None = None) -> Any:
        """The shipped model for the task ``name``; without a name, the names shipped."""
        shipped = sorted(f.name[:-3] for f in resources.files(__package__).joinpath("pretrained").iterdir()
                         if f.name.endswith(".pt"))
        if name is None:
            return shipped
        check_choice("name", name, tuple(shipped))
        with resources.as_file(resources.files(__package__).joinpath("pretrained", f"{name}.pt")) as path:
            return cls.load(path)


def _check_finite_output(mix: Mixture) -> None:
    bad = ~(torch.isfinite(mix.log_weights).all(-1) & torch.isfinite(mix.means).flatten(1).all(-1)
            & torch.isfinite(mix.scale_tril).flatten(1).all(-1))
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"the model's posterior is not finite for batch rows {rows[:10]}"
                         f"{' ...' if len(rows) > 10 else ''}: their inputs (data magnitudes against the noise "
                         "scale, prior scales) are too far outside what the model was trained on")


def _move(prior: Any, to: dict[str, Any]) -> Any:
    if isinstance(prior, Mixture):
        return Mixture(*(t.to(**to) for t in (prior.log_weights, prior.means, prior.scale_tril)))
    return prior.to(**to)
