"""Denoising score matching for the VP-SDE (:mod:`model.diffusion.sde`), with the hardware-aware
options of Yang et al. (arXiv 2404.05648, reference code ``unconditional/my_sde.py``).

One step, for a batch x_0 (reference ``SDE.loss_fn``)::

    t ~ U[t_eps, 1],  z ~ N(0, I),  x_t = m(t)·x_0 + σ(t)·z
    loss = mean ‖s(x_t, t[, y])·σ(t) + z‖²  +  act_penalty · (1/B) Σ_{a > act_threshold} a

The second term is the activation range penalty: every hidden activation above ``act_threshold``
(1.5, the reference's ``threshold``) counts with its value (the reference sums ``x[x > 1.5]`` over
the batch with ``alpha = 1e-7`` at batch 512; here the sum is divided by the batch size, so the
reference's setting is ``act_penalty = 512e-7 = 5.12e-5``).

Hardware-aware weight noise (reference ``MLP_noise`` / ``add_noise``): every forward pass uses
``w·(1 + n)`` and ``b·(1 + n)`` for the net's ``nn.Linear`` layers, n ~ N(0, σ²) with every
|n| ≥ trunc replaced by a uniform draw in [−trunc, trunc] (σ = 0.1, trunc = 0.2 in the paper), drawn
afresh per step (``model.nn.quant.truncated_weight_noise``); the gradient flows through the
perturbed weights to the clean ones.

Classifier-free guidance training: for a class-conditional net each label is replaced by "no
class" with probability ``cfg_drop`` (reference 10 %, ``MLP_c.forward`` ``masked=True``).

Quantization-aware training (``qat_spec``, a :class:`model.nn.CrossbarSpec`), as in
:func:`model.diffusion.train.train_ddpm`: after the float epochs, a copy of the net with its three
layers on crossbar tiles in digital mode (``model.nn.convert``) is fine-tuned through the
straight-through surrogate of :class:`model.nn.CrossbarLinear`, re-calibrated at the start of every
epoch on perturbed training points; the weights are copied back into the float net.

Optimiser (reference ``SDE.train`` and the notebook's settings): Adam, lr 2e-4, L2 weight decay
(``lambda_`` = 3e-5 for the ring), gradient-norm clipping at 0.1, batch 512. The reference also
keeps an EMA of the weights (decay 0.95) but never loads it; ``ema`` here is off by default and,
when set, the EMA weights are copied into the net at the end.
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn
from torch.func import functional_call

from model.diffusion.sde import VPSDE
from model.diffusion.score_net import ScoreMLP
from model.nn.quant import truncated_weight_noise

#: Paper setting of the hardware-aware weight noise: (sigma, trunc).
PAPER_WEIGHT_NOISE = (0.1, 0.2)


def _check_int(name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"train_score.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


def _check_float(name, v, lo, hi, lo_open=False, hi_open=False):
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
          and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi))
    if not ok:
        raise ValueError(f"train_score.{name} = {v!r}: out of range, allowed "
                         f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")
    return float(v)


def parse_weight_noise(weight_noise) -> tuple[float, float] | None:
    """``None`` (off), ``sigma`` (trunc = 2·sigma, the paper's ratio) or ``(sigma, trunc)``."""
    if weight_noise is None:
        return None
    if isinstance(weight_noise, (int, float)) and not isinstance(weight_noise, bool):
        sigma = _check_float("weight_noise", weight_noise, 0.0, 0.5, lo_open=True)
        return sigma, 2.0 * sigma
    if isinstance(weight_noise, (tuple, list)) and len(weight_noise) == 2:
        sigma = _check_float("weight_noise[0] (sigma)", weight_noise[0], 0.0, 0.5, lo_open=True)
        trunc = _check_float("weight_noise[1] (trunc)", weight_noise[1], 0.0, 1.0, lo_open=True)
        return sigma, trunc
    raise ValueError(f"train_score.weight_noise = {weight_noise!r}: must be None, a sigma in "
                     f"(0, 0.5] or a (sigma, trunc) pair")


def _linear_param_names(net: nn.Module) -> list[str]:
    """Names of the weight and bias of every ``nn.Linear`` in ``net`` (also inside crossbar
    layers): the parameters the weight noise perturbs."""
    names = []
    for mname, m in net.named_modules():
        if isinstance(m, nn.Linear):
            for pname, p in m.named_parameters(recurse=False):
                if p.requires_grad:
                    names.append(f"{mname}.{pname}" if mname else pname)
    return names


class _Bound(nn.Module):
    """``net(x, t, y)`` with fixed t and y, as the one-argument module ``model.nn.calibrate``
    expects."""

    def __init__(self, net, t, y):
        super().__init__()
        self.net, self.t, self.y = net, t, y

    def forward(self, x):
        return self.net(x, self.t, self.y)


def _check_data(net: ScoreMLP, data):
    x = getattr(data, "x", None)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != net.dim or not len(x):
        raise ValueError(f"train_score.data: x of shape {tuple(getattr(x, 'shape', ()))}, must "
                         f"be a non-empty (N, {net.dim}) point set (a 'points' Dataset)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("train_score.data: x has non-finite values")
    y = None
    if net.classes is not None:
        y = getattr(data, "y", None)
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
            raise ValueError(f"train_score.data: a class-conditional net ({net.classes} classes) "
                             f"needs labels y of shape ({len(x)},)")
        if getattr(data, "classes", None) != net.classes:
            raise ValueError(f"train_score.data: {getattr(data, 'classes', None)} classes, the "
                             f"net has {net.classes}")
        y = y.to(torch.int64)
        if int(y.min()) < 0 or int(y.max()) >= net.classes:
            raise ValueError(f"train_score.data: labels in [{int(y.min())}, {int(y.max())}], "
                             f"allowed [0, {net.classes - 1}]")
    return x.to(torch.float32), y


def train_score(net: ScoreMLP, data, sde: VPSDE, *, epochs: int, seed: int, batch: int = 512,
                lr: float = 2e-4, weight_noise=None, act_penalty: float = 0.0,
                act_threshold: float = 1.5, qat_spec=None, qat_epochs: int | None = None,
                qat_lr: float | None = None, cfg_drop: float = 0.1, weight_decay: float = 3e-5,
                grad_clip: float = 0.1, ema: float | None = None,
                progress: bool = True) -> dict:
    """Train ``net`` in place by denoising score matching (module docstring).

    Parameters
    ----------
    net:
        A :class:`ScoreMLP` (conditional nets use ``data.y`` with label dropout ``cfg_drop``);
        afterwards it is in eval mode and still a float ScoreMLP (plain ``nn.Linear`` layers).
    data:
        A points ``Dataset`` (``x`` (N, dim), ``y`` and ``classes`` for conditional nets).
    sde:
        The VP-SDE whose training marginal is matched.
    epochs:
        Passes over the data (1 … 10^6); the reference ring run uses 10000.
    seed:
        Seeds the batch order, t, z, label dropout and weight noise (the net's initial weights
        come from its own seed): same seeds, same bits.
    batch, lr, weight_decay, grad_clip:
        Batch size, Adam learning rate, L2 weight decay, gradient-norm clip (reference 512, 2e-4,
        3e-5, 0.1).
    weight_noise:
        ``None``, ``sigma`` or ``(sigma, trunc)``: hardware-aware multiplicative weight noise
        (:data:`PAPER_WEIGHT_NOISE` is the paper's).
    act_penalty, act_threshold:
        Weight and threshold of the activation range penalty (0 = off).
    qat_spec, qat_epochs, qat_lr:
        A ``model.nn.CrossbarSpec``: after the float epochs, ``qat_epochs`` (default
        ``max(1, epochs // 5)``) of quantization-aware fine-tuning at ``qat_lr`` (default ``lr``)
        on a copy of the net in ``model.nn``'s digital mode (straight-through gradients),
        recalibrated at the start of every epoch; its weights are copied back into the net, so
        ``model.nn.convert(net, "digital", qat_spec)`` + calibration is what was trained.
    cfg_drop:
        Label dropout probability in [0, 1) for conditional nets.
    ema:
        EMA decay in (0, 1) whose average is copied into the net at the end of each phase, or
        ``None`` (the reference's effective setting).
    progress:
        Show a tqdm bar (epochs, with the running loss).

    Returns
    -------
    dict
        ``loss`` (mean loss per epoch), ``qat_loss`` (per QAT epoch, or []), ``steps``,
        ``time_s`` and the options used.
    """
    o = "train_score"
    if not isinstance(net, ScoreMLP):
        raise ValueError(f"{o}.net = {type(net).__name__}: must be a ScoreMLP")
    if not isinstance(sde, VPSDE):
        raise ValueError(f"{o}.sde = {type(sde).__name__}: must be a VPSDE")
    _check_int("epochs", epochs, 1, 10**6)
    _check_int("seed", seed, 0, 2**32 - 1)
    _check_int("batch", batch, 1, 1 << 20)
    _check_float("lr", lr, 0.0, 1.0, lo_open=True)
    _check_float("act_penalty", act_penalty, 0.0, 1e6)
    _check_float("act_threshold", act_threshold, 0.0, 1e6)
    _check_float("cfg_drop", cfg_drop, 0.0, 1.0, hi_open=True)
    _check_float("weight_decay", weight_decay, 0.0, 1.0)
    _check_float("grad_clip", grad_clip, 0.0, 1e6, lo_open=True)
    if ema is not None:
        _check_float("ema", ema, 0.0, 1.0, lo_open=True, hi_open=True)
    if qat_spec is not None:
        from model.nn import CrossbarSpec
        if not isinstance(qat_spec, CrossbarSpec):
            raise ValueError(f"{o}.qat_spec = {type(qat_spec).__name__}: must be a "
                             f"model.nn.CrossbarSpec or None")
        qat_epochs = max(1, epochs // 5) if qat_epochs is None else qat_epochs
        _check_int("qat_epochs", qat_epochs, 1, 10**6)
        qat_lr = lr if qat_lr is None else qat_lr
        _check_float("qat_lr", qat_lr, 0.0, 1.0, lo_open=True)
    noise = parse_weight_noise(weight_noise)
    x_all, y_all = _check_data(net, data)
    n_data = len(x_all)
    conditional = net.classes is not None

    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed ^ 0x0A11_7E57)
    t_start = time.perf_counter()

    def run_phase(model: ScoreMLP, n_epochs: int, base_lr: float, desc: str, on_epoch=None):
        acts: list[torch.Tensor] = []
        hooks = []
        if act_penalty > 0.0:
            for m in (model.act1, model.act2):
                hooks.append(m.register_forward_hook(lambda _m, _i, out: acts.append(out)))
        named = dict(model.named_parameters())
        noisy = [(k, named[k]) for k in _linear_param_names(model)] if noise is not None else []
        noisy_total = sum(p.numel() for _, p in noisy)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=base_lr, weight_decay=weight_decay, foreach=True)
        shadow = [p.detach().clone() for p in params] if ema is not None else None
        hist, steps = [], 0
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_epochs, desc=desc, unit="epoch", mininterval=1.0,
                       dynamic_ncols=True, leave=False)
        model.train()
        try:
            for ep in range(n_epochs):
                if on_epoch is not None:
                    on_epoch()
                    model.train()
                perm = torch.randperm(n_data, generator=gen)
                tot, nb = 0.0, 0
                for start in range(0, n_data, batch):
                    idx = perm[start:start + batch]
                    b = len(idx)
                    t = torch.rand(b, generator=gen) * (1.0 - sde.t_eps) + sde.t_eps
                    z = torch.randn(b, model.dim, generator=gen)
                    m, s = sde.marginal(t)
                    m, s = m[:, None], s[:, None]
                    xt = m * x_all[idx] + s * z
                    y = None
                    if conditional:
                        y = y_all[idx]
                        if cfg_drop > 0.0:
                            drop = torch.rand(b, generator=gen) < cfg_drop
                            y = torch.where(drop, torch.full_like(y, model.classes), y)
                    acts.clear()
                    if noise is not None:
                        # One draw for all perturbed tensors, split in parameter order.
                        n_all = truncated_weight_noise((noisy_total,), noise[0], noise[1],
                                                       noise_gen)
                        pert, off = {}, 0
                        for k, p in noisy:
                            pert[k] = p * (1.0 + n_all[off:off + p.numel()].view_as(p))
                            off += p.numel()
                        out = functional_call(model, pert, (xt, t, y))
                    else:
                        out = model(xt, t, y)
                    loss = (out * s + z).square().mean()
                    if act_penalty > 0.0:
                        pen = sum((a * (a > act_threshold)).sum() for a in acts) / b
                        loss = loss + act_penalty * pen
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
                    opt.step()
                    if shadow is not None:
                        with torch.no_grad():
                            torch._foreach_mul_(shadow, ema)
                            torch._foreach_add_(shadow, [p.detach() for p in params],
                                                alpha=1.0 - ema)
                    tot += float(loss.detach())
                    nb += 1
                    steps += 1
                ep_loss = tot / nb
                if not math.isfinite(ep_loss):
                    raise RuntimeError(f"{o}: loss is {ep_loss} at epoch {ep} ({desc}; lr "
                                       f"{base_lr} too high?)")
                hist.append(ep_loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{ep_loss:.4f}", refresh=False)
        finally:
            for h in hooks:
                h.remove()
            if bar is not None:
                bar.close()
        if shadow is not None:
            with torch.no_grad():
                for sh, p in zip(shadow, params):
                    p.copy_(sh)
        return hist, steps

    hist, steps = run_phase(net, epochs, lr, "train score")
    qat_hist = []
    if qat_spec is not None:
        from model.nn import calibrate, convert, crossbar_layers
        qnet = copy.deepcopy(net)
        convert(qnet, "digital", qat_spec, inplace=True)
        calib_seed = [seed * 7919 + 1]

        def recalibrate():
            # Fresh perturbed points each epoch: the scales follow the weights as they move.
            calib_seed[0] += 1
            cg = torch.Generator().manual_seed(calib_seed[0])
            idx = torch.randint(n_data, (min(n_data, 4096),), generator=cg)
            t = torch.rand(len(idx), generator=cg) * (1.0 - sde.t_eps) + sde.t_eps
            xt = sde.perturb(x_all[idx], t, torch.randn(len(idx), net.dim, generator=cg))
            calibrate(_Bound(qnet, t, y_all[idx] if conditional else None), xt)

        qat_hist, qsteps = run_phase(qnet, qat_epochs, qat_lr, "qat score", recalibrate)
        steps += qsteps
        with torch.no_grad():
            for dst, src in zip((net.lin1, net.lin2, net.lin3), crossbar_layers(qnet)):
                dst.weight.copy_(src.linear.weight)
                dst.bias.copy_(src.linear.bias)
            if net.class_emb is not None:
                net.class_emb.weight.copy_(qnet.class_emb.weight)
    net.eval()
    return {"loss": hist, "qat_loss": qat_hist, "steps": steps,
            "time_s": time.perf_counter() - t_start, "epochs": epochs, "batch": batch, "lr": lr,
            "seed": seed, "weight_noise": None if noise is None else list(noise),
            "act_penalty": act_penalty, "act_threshold": act_threshold, "cfg_drop": cfg_drop,
            "weight_decay": weight_decay, "grad_clip": grad_clip, "ema": ema,
            "qat_epochs": qat_epochs if qat_spec is not None else 0,
            "qat_lr": qat_lr if qat_spec is not None else None}


@torch.no_grad()
def eval_score_loss(net: ScoreMLP, data, sde: VPSDE, *, seed: int = 0, reps: int = 4) -> float:
    """Denoising score-matching loss ``mean ‖s·σ + z‖²`` of ``net`` on ``data`` (all points,
    ``reps`` draws of t and z each, labels as given; no weight noise), from ``seed``: a held-out
    figure of merit that needs no sampler."""
    if not isinstance(net, ScoreMLP):
        raise ValueError(f"eval_score_loss.net = {type(net).__name__}: must be a ScoreMLP")
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= 1000:
        raise ValueError(f"eval_score_loss.reps = {reps!r}: out of range, allowed [1, 1000]")
    x, y = _check_data(net, data)
    g = torch.Generator().manual_seed(seed)
    was = net.training
    net.eval()
    tot = 0.0
    for _ in range(reps):
        t = torch.rand(len(x), generator=g) * (1.0 - sde.t_eps) + sde.t_eps
        z = torch.randn(x.shape, generator=g)
        s = sde.marginal(t)[1][:, None]
        tot += float((net(sde.perturb(x, t, z), t, y) * s + z).square().mean())
    net.train(was)
    return tot / reps


__all__ = ["PAPER_WEIGHT_NOISE", "eval_score_loss", "parse_weight_noise", "train_score"]
