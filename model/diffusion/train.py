"""DDPM training (ε-prediction, Ho et al. 2020) with the hardware-aware options, and checkpoints.

:func:`train_ddpm` minimises ``E‖ε − ε̂(sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε, t)‖²`` (t uniform, ε
Gaussian) with Adam, a cosine learning-rate decay and an exponential moving average (EMA) of the
weights, which is what the net holds afterwards. Options:

``weight_noise``
    Per-forward multiplicative weight noise on the ``mlp``'s Linear weights, ``w·(1 + n)``,
    ``n ~ N(0, σ²)`` with every ``|n| ≥ trunc`` redrawn uniformly in ``[−trunc, trunc]`` — the rule
    and the generator of :func:`model.nn.quant.truncated_weight_noise` (Yang et al. 2024, arXiv
    2404.05648, reference code: σ = 0.1, trunc = 0.2). ``True`` means those values; a float σ uses
    trunc = 2σ; a ``(σ, trunc)`` pair sets both.
``act_penalty``
    Activation range penalty ``λ · mean(relu(|z| − act_bound)²)`` over the hidden
    pre-activations ``z`` (the inputs of the hidden activations), which keeps their range, and so
    the DAC/ADC step of the hardware, small.
``qat_spec``
    A :class:`model.nn.CrossbarSpec`: after the float epochs, ``qat_epochs`` of quantization-aware
    fine-tuning with the ``mlp`` in ``model.nn``'s bit-exact digital mode (straight-through
    gradients), recalibrated on fresh inputs every few epochs (``qat_recal``); the trained weights are
    copied back into the plain ``nn.Linear`` layers, so the net stays a float EpsMLP whose
    ``convert(net.mlp, "digital", spec)`` + ``calibrate`` is what was trained.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) hold the net's class, its
constructor arguments, its state_dict and a JSON meta block, with :data:`FORMAT_VERSION`; they are
written atomically and read with ``torch.load(weights_only=True)`` (no code runs on load).
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import math
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.diffusion.data import Dataset
from model.diffusion.schedules import DDPMSchedule
from model.io import atomic_write_bytes
from model.nn.quant import truncated_weight_noise

#: Version of the checkpoint layout below; a file of another version is refused.
FORMAT_VERSION = 1
#: Marker stored in every checkpoint (tells a spindiff checkpoint from any other torch file).
FORMAT_NAME = "spindiff-diffusion-checkpoint"
#: Modules a checkpoint may name its net class from (nothing else is imported on load).
NET_MODULES = ("model.diffusion.",)
#: Default checkpoint directory (committed) and the default digits checkpoint.
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "digits.pt"
REGEN_HINT = ("regenerate it with `make train` (the default checkpoints) or "
              "`python -m sim.train --dataset <name> --out <path>`")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of another format version or inconsistent; the message
    names the file and how to regenerate it."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


# ------------------------------------------------------------------------------------------------
# argument checks
def _check_int(owner, name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed integer [{lo}, {hi}]")
    return v


def _check_float(owner, name, v, lo, hi, lo_open=False):
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and (
        lo < v if lo_open else lo <= v) and v <= hi
    if not ok:
        lb = "(" if lo_open else "["
        raise ValueError(f"{owner}.{name} = {v!r}: out of range, allowed {lb}{lo}, {hi}]")
    return float(v)


def _weight_noise(w) -> tuple[float, float] | None:
    o = "train_ddpm"
    if w is None or w is False:
        return None
    if w is True:
        return 0.1, 0.2
    if isinstance(w, (tuple, list)) and len(w) == 2:
        sig = _check_float(o, "weight_noise[0] (sigma)", w[0], 0.0, 1.0, lo_open=True)
        tr = _check_float(o, "weight_noise[1] (trunc)", w[1], 0.0, 1.0, lo_open=True)
        return sig, tr
    sig = _check_float(o, "weight_noise", w, 0.0, 0.5, lo_open=True)
    return sig, 2.0 * sig


def _flat_data(data, dim: int, owner: str) -> torch.Tensor:
    x = data.x if isinstance(data, Dataset) else data
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{owner}.data: must be a Dataset or a non-empty (N, ...) tensor, got "
                         f"{type(x).__name__}")
    x = x.reshape(x.shape[0], -1).to(torch.float32)
    if x.shape[1] != dim:
        raise ValueError(f"{owner}.data: samples of {x.shape[1]} values, the net takes {dim}")
    return x


def _check_net(net, sched, owner):
    if not isinstance(net, nn.Module) or not hasattr(net, "mlp") or not hasattr(net, "dim"):
        raise ValueError(f"{owner}.net = {type(net).__name__}: must be an EpsMLP-like module "
                         f"(attributes dim, steps, mlp)")
    if not isinstance(sched, DDPMSchedule):
        raise ValueError(f"{owner}.sched = {sched!r}: must be a DDPMSchedule")
    if getattr(net, "steps", sched.steps) != sched.steps:
        raise ValueError(f"{owner}.sched.steps = {sched.steps}: the net's time table has "
                         f"{net.steps} rows; allowed {net.steps}")


# ------------------------------------------------------------------------------------------------
# loss pieces
def _noised_batch(x0, sched, gen):
    n = x0.shape[0]
    t = torch.randint(0, sched.steps, (n,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    return sched.q_sample(x0, t, eps), t, eps


def _linears(mlp: nn.Module) -> list[nn.Linear]:
    return [m for m in mlp.modules() if isinstance(m, nn.Linear)]


def mlp_inputs(net, data, sched: DDPMSchedule, n: int = 2048, seed: int = 0) -> torch.Tensor:
    """``n`` inputs of ``net.mlp`` as training sees them: ``cat(x_t, temb[t])`` for data images
    (drawn with replacement), t uniform, ε Gaussian — the calibration batch of ``model.nn``."""
    _check_net(net, sched, "mlp_inputs")
    _check_int("mlp_inputs", "n", n, 1, 1 << 22)
    x = _flat_data(data, net.dim, "mlp_inputs")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(0, x.shape[0], (n,), generator=g)
    xt, t, _ = _noised_batch(x[idx], sched, g)
    with torch.no_grad():
        return net.mlp_input(xt, t)


@torch.no_grad()
def eval_loss(net, data, sched: DDPMSchedule, *, seed: int = 0, reps: int = 4,
              batch: int = 4096) -> float:
    """Mean denoising loss ``‖ε − ε̂‖²/dim`` over ``reps`` seeded noisings of every sample of
    ``data`` (t uniform): the same seed gives the same draws for any net, so nets compare
    draw for draw. The net is evaluated in eval mode (no training noise)."""
    _check_net(net, sched, "eval_loss")
    _check_int("eval_loss", "reps", reps, 1, 1000)
    _check_int("eval_loss", "batch", batch, 1, 1 << 22)
    x = _flat_data(data, net.dim, "eval_loss")
    g = torch.Generator().manual_seed(int(seed))
    was = net.training
    net.eval()
    tot, cnt = 0.0, 0
    try:
        for _ in range(reps):
            for i in range(0, x.shape[0], batch):
                xt, t, eps = _noised_batch(x[i:i + batch], sched, g)
                err = (net(xt, t).to(torch.float64) - eps.to(torch.float64)) ** 2
                tot += float(err.sum())
                cnt += err.numel()
    finally:
        net.train(was)
    return tot / cnt


def quantized_copy(net, spec, calib: torch.Tensor, mode: str = "digital"):
    """A deep copy of ``net`` whose ``mlp`` runs on crossbar tiles (``model.nn.convert``) in
    ``mode``, calibrated on the ``mlp`` inputs ``calib`` (:func:`mlp_inputs`): plain
    post-training quantization when ``net`` was trained in float, the trained model when it was
    trained with ``qat_spec=spec``."""
    from model.nn import convert
    q = copy.deepcopy(net)
    q.mlp = convert(q.mlp, mode, spec, calib=calib)
    return q


class _EMA:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in net.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, decay: float | None = None):
        d = self.decay if decay is None else decay
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @torch.no_grad()
    def copy_to(self, params=None):
        for s, p in zip(self.shadow, self.params if params is None else params):
            p.copy_(s)


def _pbar(total, desc, progress):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------
def train_ddpm(net, data, sched: DDPMSchedule, *, epochs: int, batch: int = 256,
               lr: float = 2e-3, seed: int = 0, weight_noise=None, act_penalty: float = 0.0,
               qat_spec=None, progress: bool = True, act_bound: float = 4.0,
               ema: float = 0.999, lr_min_ratio: float = 0.02, qat_epochs: int | None = None,
               qat_lr: float | None = None, qat_calib: int = 4096,
               warmup_steps: int = 200, min_snr: float | None = None,
               qat_recal: int | None = None) -> dict:
    """Train ``net`` (an :class:`model.diffusion.nets.EpsMLP`) as a DDPM ε-network, in place.

    Parameters
    ----------
    net:
        The ε-network; afterwards it holds the EMA weights, in eval mode.
    data:
        A :class:`model.diffusion.data.Dataset` (or an (N, ...) tensor) of images in [−1, 1].
    sched:
        The :class:`model.diffusion.schedules.DDPMSchedule` (``steps`` = the net's).
    epochs:
        Passes over the data (one noising per image each); ``batch`` images per Adam step.
        0 is allowed with ``qat_spec``: quantization-aware fine-tuning of an already trained
        net only.
    lr:
        Adam's learning rate, after a linear warm-up of ``warmup_steps`` steps, decayed on a cosine
        to ``lr · lr_min_ratio`` at the end.
    seed:
        Seeds the initialisation-independent draws (batches, t, ε, weight noise): the same net,
        data and seed give the same weights.
    weight_noise, act_penalty, act_bound, qat_spec:
        Hardware-aware options (module docstring).
    ema:
        EMA decay of the weights (0 = none); capped at ``1 − 10 / steps`` of the phase, so a
        short run averages over its last tenth at most.
    qat_epochs, qat_lr, qat_calib, qat_recal:
        QAT fine-tuning epochs (default ``max(1, epochs // 5)``), its learning rate (default
        ``lr / 10``, cosine-decayed), calibration batch size, and how often (in epochs) the
        scales are recalibrated on a fresh batch (default ``max(1, qat_epochs // 20)``; the
        first QAT epoch always calibrates).
    min_snr:
        Min-SNR-γ loss weighting (Hang et al. 2023, arXiv 2303.09556): step t weighted by
        ``min(SNR_t, γ) / SNR_t``, ``SNR_t = ᾱ_t / (1 − ᾱ_t)``; ``None`` = the plain loss.
    progress:
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``loss`` (mean training loss per epoch), ``qat_loss`` (per QAT epoch, or []),
        ``steps`` (Adam steps), ``time_s``, and the options used.
    """
    o = "train_ddpm"
    _check_net(net, sched, o)
    _check_int(o, "epochs", epochs, 0 if qat_spec is not None else 1, 10_000_000)
    _check_int(o, "batch", batch, 1, 1 << 20)
    _check_float(o, "lr", lr, 0.0, 1.0, lo_open=True)
    _check_int(o, "seed", seed, 0, 2**32 - 1)
    wn = _weight_noise(weight_noise)
    act_penalty = _check_float(o, "act_penalty", act_penalty, 0.0, 1e6)
    act_bound = _check_float(o, "act_bound", act_bound, 0.0, 1e6, lo_open=True)
    ema = _check_float(o, "ema", ema, 0.0, 0.99999)
    lr_min_ratio = _check_float(o, "lr_min_ratio", lr_min_ratio, 0.0, 1.0)
    if min_snr is not None:
        min_snr = _check_float(o, "min_snr", min_snr, 0.0, 1e6, lo_open=True)
    _check_int(o, "warmup_steps", warmup_steps, 0, 10_000_000)
    if qat_spec is not None:
        from model.nn import CrossbarSpec
        if not isinstance(qat_spec, CrossbarSpec):
            raise ValueError(f"{o}.qat_spec = {qat_spec!r}: must be a model.nn.CrossbarSpec or "
                             f"None")
        if epochs == 0 and qat_epochs is None:
            raise ValueError(f"{o}.qat_epochs = None: give it when epochs = 0, allowed "
                             f"[1, 10000000]")
        qat_epochs = max(1, epochs // 5) if qat_epochs is None else qat_epochs
        _check_int(o, "qat_epochs", qat_epochs, 1, 10_000_000)
        qat_lr = lr / 10.0 if qat_lr is None else qat_lr
        _check_float(o, "qat_lr", qat_lr, 0.0, 1.0, lo_open=True)
        _check_int(o, "qat_calib", qat_calib, 1, 1 << 22)
        if qat_recal is not None:
            _check_int(o, "qat_recal", qat_recal, 1, 10_000_000)
    x = _flat_data(data, net.dim, o)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    wgen = torch.Generator().manual_seed(seed ^ 0x5A5A_1234)
    per_epoch = -(-n // batch)
    t0 = time.perf_counter()

    lins = _linears(net.mlp)
    pre: list[torch.Tensor] = []

    if min_snr is not None:
        snr = sched.alpha_bar / (1.0 - sched.alpha_bar)
        t_weight = (snr.clamp(max=min_snr) / snr).to(torch.float32)
    else:
        t_weight = None

    def loss_fn(model, xb, noisy):
        xt, t, eps = _noised_batch(xb, sched, gen)
        pre.clear()
        if wn is not None:
            params = dict(model.named_parameters())
            for k in noisy:
                w = params[k]
                params[k] = w * (1.0 + truncated_weight_noise(w.shape, wn[0], wn[1], wgen,
                                                              dtype=w.dtype))
            out = torch.func.functional_call(model, params, (xt, t))
        else:
            out = model(xt, t)
        if t_weight is None:
            loss = F.mse_loss(out, eps)
            mse = float(loss.detach())
        else:
            per = ((out - eps) ** 2).mean(dim=1)
            loss = (t_weight[t] * per).mean()
            mse = float(per.detach().mean())
        if act_penalty > 0.0 and pre:
            pen = sum(F.relu(z.abs() - act_bound).pow(2).mean() for z in pre) / len(pre)
            loss = loss + act_penalty * pen
        return loss, mse

    def run_phase(model, layers, n_epochs, base_lr, desc, on_epoch=None, hidden=None):
        """Adam over ``model``; ``layers``: its mlp's nn.Linear layers (all get weight noise);
        ``hidden``: the modules whose pre-activation is penalised (default the Linear layers
        but the output one; their outputs are the pre-activations)."""
        names = {id(p): k for k, p in model.named_parameters()}
        noisy = [names[id(m.weight)] for m in layers]
        if hidden is None:
            hooks = [m.register_forward_hook(lambda m, i, out: pre.append(out))
                     for m in layers[:-1]] if act_penalty > 0.0 else []
        else:
            # CrossbarLinear layers: the pre-activation of the (float) surrogate of the layer
            # (its output is the code after requantization and activation).
            hooks = [m.register_forward_hook(
                lambda m, i, out: pre.append(F.linear(i[0], m.linear.weight, m.linear.bias)))
                for m in hidden] if act_penalty > 0.0 else []
        # The EMA window is at most a tenth of the run (decay <= 1 - 10 / steps): a short run
        # must not end on an average that still remembers its first steps.
        decay = min(ema, max(0.0, 1.0 - 10.0 / max(1, n_epochs * per_epoch)))
        avg = _EMA(model, decay) if decay > 0.0 else None
        opt = torch.optim.Adam(model.parameters(), lr=base_lr)
        steps_total = n_epochs * per_epoch
        hist, step = [], 0
        bar = _pbar(n_epochs, desc, progress)
        model.train()
        try:
            for _ in range(n_epochs):
                if on_epoch is not None:
                    on_epoch()
                perm = torch.randperm(n, generator=gen)
                tot = 0.0
                for i in range(0, n, batch):
                    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
                    cos = 0.5 * (1.0 + math.cos(math.pi * step / max(1, steps_total)))
                    for pg in opt.param_groups:
                        pg["lr"] = base_lr * warm * (lr_min_ratio + (1.0 - lr_min_ratio) * cos)
                    idx = perm[i:i + batch]
                    loss, mse = loss_fn(model, x[idx], noisy)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if avg is not None:
                        # EMA warm-up (as in common implementations): the decay is
                        # min(ema, (1 + s) / (10 + s)), so the average does not keep the
                        # initial weights for thousands of steps.
                        avg.update(min(avg.decay, (1.0 + step) / (10.0 + step)))
                    tot += mse * len(idx)
                    step += 1
                hist.append(tot / n)
                bar.update(1)
                bar.set_postfix(loss=f"{hist[-1]:.4f}")
        finally:
            bar.close()
            for h in hooks:
                h.remove()
        if avg is not None:
            avg.copy_to()
        return hist, step

    hist, steps = run_phase(net, lins, epochs, lr, "train") if epochs else ([], 0)
    qat_hist = []
    if qat_spec is not None:
        from model.nn import calibrate, convert, crossbar_layers
        qnet = copy.deepcopy(net)
        convert(qnet.mlp, "digital", qat_spec, inplace=True)
        qlayers = crossbar_layers(qnet.mlp)
        calib_seed = [seed * 7919 + 1]
        every = max(1, qat_epochs // 20) if qat_recal is None else qat_recal
        epoch = [0]

        def recalibrate():
            # Fresh inputs every `every` epochs: the scales follow the weights as they move.
            if epoch[0] % every == 0:
                calib_seed[0] += 1
                calibrate(qnet.mlp, mlp_inputs(net, x, sched, qat_calib, calib_seed[0]))
            epoch[0] += 1

        qat_hist, qsteps = run_phase(qnet, [m.linear for m in qlayers], qat_epochs, qat_lr,
                                     "qat", recalibrate, hidden=qlayers[:-1])
        steps += qsteps
        with torch.no_grad():
            for dst, src in zip(lins, qlayers):
                dst.weight.copy_(src.linear.weight)
                if dst.bias is not None:
                    dst.bias.copy_(src.linear.bias)
    net.eval()
    return {"loss": hist, "qat_loss": qat_hist, "steps": steps,
            "time_s": time.perf_counter() - t0, "epochs": epochs, "batch": batch, "lr": lr,
            "seed": seed, "ema": ema, "weight_noise": None if wn is None else list(wn),
            "act_penalty": act_penalty, "act_bound": act_bound, "min_snr": min_snr,
            "qat_epochs": qat_epochs if qat_spec is not None else 0,
            "qat_lr": qat_lr if qat_spec is not None else None}


# ------------------------------------------------------------------------------------------------
# checkpoints
def _jsonable(owner: str, meta) -> str:
    if not isinstance(meta, dict):
        raise ValueError(f"{owner}.meta = {type(meta).__name__}: must be a dict")
    try:
        return json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{owner}.meta: must be JSON-serialisable (str, numbers, lists, dicts): "
                         f"{e}") from e


def save_checkpoint(path, net: nn.Module, meta: dict | None = None) -> Path:
    """Write ``net`` (class, constructor arguments, state_dict) and ``meta`` to ``path``
    atomically (a temporary file, then a rename).

    The constructor arguments are ``meta["net_kwargs"]`` if given, else ``net.init_kwargs``; the
    class must live in ``model.diffusion``. ``meta`` must be JSON-serialisable (data set, schedule,
    seed, training options and losses, …); ``format_version`` is added.
    """
    o = "save_checkpoint"
    meta = dict(meta or {})
    if not isinstance(net, nn.Module):
        raise ValueError(f"{o}.net = {type(net).__name__}: must be an nn.Module")
    cls = type(net)
    if not cls.__module__.startswith(NET_MODULES):
        raise ValueError(f"{o}.net: class {cls.__module__}.{cls.__qualname__} is not in "
                         f"{NET_MODULES}; only those are rebuilt on load")
    kwargs = meta.get("net_kwargs", getattr(net, "init_kwargs", None))
    if not isinstance(kwargs, dict):
        raise ValueError(f"{o}.net: needs its constructor arguments, as net.init_kwargs or "
                         f"meta['net_kwargs'] (a dict)")
    meta["net_kwargs"] = kwargs
    meta["format_version"] = FORMAT_VERSION
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    obj = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
           "class": f"{cls.__module__}:{cls.__qualname__}",
           "kwargs_json": _jsonable(o, kwargs), "meta_json": _jsonable(o, meta),
           "state_dict": state}
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> tuple[nn.Module, dict]:
    """``(net, meta)`` from a :func:`save_checkpoint` file; the net is in eval mode.

    Raises :class:`CheckpointMissing` / :class:`CheckpointError` naming the file and how to
    regenerate it when the file is missing, unreadable, not a spindiff checkpoint, of another
    :data:`FORMAT_VERSION`, or does not fit its own class.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(f"checkpoint {path}: not found; {REGEN_HINT}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            AttributeError, ImportError, IndexError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: corrupt or not a torch file "
                              f"({type(e).__name__}: {str(e)[:200]}); {REGEN_HINT}") from e
    except Exception as e:      # pickle.UnpicklingError and friends
        raise CheckpointError(f"checkpoint {path}: unreadable ({type(e).__name__}: "
                              f"{str(e)[:200]}); {REGEN_HINT}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {path}: not a spindiff diffusion checkpoint; "
                              f"{REGEN_HINT}")
    ver = obj.get("format_version")
    if ver != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {ver!r}, this code reads "
                              f"version {FORMAT_VERSION}; {REGEN_HINT}")
    try:
        mod_name, qual = str(obj["class"]).split(":")
        kwargs = json.loads(obj["kwargs_json"])
        meta = json.loads(obj["meta_json"])
        state = obj["state_dict"]
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: incomplete ({type(e).__name__}: {e}); "
                              f"{REGEN_HINT}") from e
    if not mod_name.startswith(NET_MODULES):
        raise CheckpointError(f"checkpoint {path}: net class {mod_name}:{qual} is not in "
                              f"{NET_MODULES}; {REGEN_HINT}")
    try:
        cls = getattr(importlib.import_module(mod_name), qual)
        net = cls(**kwargs)
        net.load_state_dict(state, strict=True)
    except (ImportError, AttributeError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: does not fit {mod_name}:{qual} "
                              f"({type(e).__name__}: {str(e)[:300]}); {REGEN_HINT}") from e
    net.eval()
    return net, meta


__all__ = ["CHECKPOINT_DIR", "CheckpointError", "CheckpointMissing", "DEFAULT_CHECKPOINT",
           "FORMAT_VERSION", "eval_loss", "load_checkpoint", "mlp_inputs", "quantized_copy",
           "save_checkpoint", "train_ddpm"]
