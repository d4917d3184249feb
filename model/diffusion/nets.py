"""The DDPM ε-network for flattened images: a plain MLP on ``cat(x_t, temb[t])``.

``EpsMLP.mlp`` is a straight ``nn.Sequential`` of ``nn.Linear`` → activation → … → ``nn.Linear``
(no activation after the last layer), so ``model.nn.convert(net.mlp, mode, spec)`` puts every layer
on crossbar tiles and ``model.nn.export_program`` turns it into one layer-engine program; the time
embedding is a fixed table indexed by the integer step (the hardware stores it as a ROM and feeds
its row to the engine next to x_t).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Activation names accepted by :class:`EpsMLP` (ReLU is the engine's native one; the others
#: become its lookup table, ``model.nn.LUT_ACTIVATIONS``).
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _check_int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


def sinusoidal_table(steps: int, dim: int) -> torch.Tensor:
    """Transformer-style table (Vaswani et al. 2017, as in Ho et al.'s DDPM): row t is
    ``[sin(t·ω_0) … sin(t·ω_{h−1}), cos(t·ω_0) … cos(t·ω_{h−1})]``, ``ω_k = 10000^(−k/h)``,
    ``h = dim / 2``; float32, shape (steps, dim), every entry in [−1, 1]."""
    _check_int("sinusoidal_table", "steps", steps, 1, 100_000)
    _check_int("sinusoidal_table", "dim", dim, 2, 1024)
    if dim % 2:
        raise ValueError(f"sinusoidal_table.dim = {dim}: must be even, allowed 2, 4, ... 1024")
    h = dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(h, dtype=torch.float64) / h)
    arg = torch.arange(steps, dtype=torch.float64)[:, None] * omega[None, :]
    return torch.cat([arg.sin(), arg.cos()], dim=1).to(torch.float32)


class EpsMLP(nn.Module):
    """ε̂(x_t, t) for flattened images.

    Parameters
    ----------
    dim:
        Flattened image size (64 for the 8×8 digits, 784 for fashion-mnist).
    steps:
        Diffusion steps T: rows of the time-embedding table.
    hidden:
        Hidden layer widths (one or more).
    temb_dim:
        Width of the time embedding (even).
    act:
        Hidden activation, a key of :data:`ACTIVATIONS`.

    Attributes
    ----------
    temb:
        Buffer (steps, temb_dim): the fixed sinusoidal table (:func:`sinusoidal_table`).
    mlp:
        ``nn.Sequential``: Linear(dim + temb_dim, hidden[0]), act, …, Linear(hidden[-1], dim).
    init_kwargs:
        The constructor arguments (checkpoints rebuild the net from them).
    """

    def __init__(self, dim: int, steps: int, hidden=(128, 128), temb_dim: int = 16,
                 act: str = "relu"):
        super().__init__()
        o = "EpsMLP"
        _check_int(o, "dim", dim, 1, 1 << 20)
        _check_int(o, "steps", steps, 1, 100_000)
        hidden = tuple(hidden) if isinstance(hidden, (list, tuple)) else hidden
        if not isinstance(hidden, tuple) or not hidden or any(
                isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 8192
                for h in hidden):
            raise ValueError(f"{o}.hidden = {hidden!r}: must be a non-empty sequence of "
                             f"integers in [1, 8192]")
        _check_int(o, "temb_dim", temb_dim, 2, 1024)
        if temb_dim % 2:
            raise ValueError(f"{o}.temb_dim = {temb_dim}: must be even, allowed 2, 4, ... 1024")
        if act not in ACTIVATIONS:
            raise ValueError(f"{o}.act = {act!r}: unknown, allowed {sorted(ACTIVATIONS)}")
        self.dim, self.steps, self.hidden, self.temb_dim, self.act_name = (
            dim, steps, hidden, temb_dim, act)
        self.init_kwargs = {"dim": dim, "steps": steps, "hidden": list(hidden),
                            "temb_dim": temb_dim, "act": act}
        # Not persistent: rebuilt from (steps, temb_dim) on load, so checkpoints stay small.
        self.register_buffer("temb", sinusoidal_table(steps, temb_dim), persistent=False)
        layers, d = [], dim + temb_dim
        for h in hidden:
            layers += [nn.Linear(d, h), ACTIVATIONS[act]()]
            d = h
        layers.append(nn.Linear(d, dim))
        self.mlp = nn.Sequential(*layers)

    def mlp_input(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``cat(x, temb[t])``, the input of :attr:`mlp` (x (N, dim), t (N,) int64)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"EpsMLP.x: shape {tuple(x.shape)}, must be (N, {self.dim})")
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"EpsMLP.t: dtype {t.dtype}, must be an integer tensor")
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"EpsMLP.t: shape {tuple(t.shape)}, must be ({x.shape[0]},) "
                             f"or a scalar")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.steps):
            raise ValueError(f"EpsMLP.t: values in [{int(t.min())}, {int(t.max())}], allowed "
                             f"[0, {self.steps - 1}]")
        return torch.cat([x, self.temb[t.to(torch.int64)].to(x.dtype)], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ (N, dim) for x (N, dim) and integer steps t (N,) (a scalar t is broadcast)."""
        return self.mlp(self.mlp_input(x, t))


__all__ = ["ACTIVATIONS", "EpsMLP", "sinusoidal_table"]
