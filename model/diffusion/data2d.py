"""The 2-D data sets of the RRAM paper's set-ups (Yang et al., arXiv 2404.05648):

* ``ring`` — the unconditional 2-D ring ("circle"): radius ~ N(0.7, 0.04²), angle uniform in
  [0, 2π), 10 000 points (reference ``unconditional/HDPM copy.ipynb``: ``mean_s = 0.7``,
  ``std_s = 0.04``, ``torch.randn(10000)``, ``torch.rand(10000) * 2 * np.pi``). ``split`` "train"
  and "test" are two independent draws of the same size from ``seed``.
* ``latent-digits`` — the paper's conditional task ran diffusion in the 2-D latent of a small
  conv-VAE trained on three EMNIST letters (H, K, U; ``conditional/VAE_v1.ipynb``: ``convVAE``,
  ``latent_size = 2``, ``c1_dim = 8, c2_dim = 16, lin_dim = 16``, Adam lr 1e-3, batch 64). Here
  the same kind of VAE is trained in-project on three digit classes of scikit-learn's bundled 8×8
  digits (:data:`LATENT_DIGITS`), and the data set is the encoder means of the images, centred and
  scaled to an overall standard deviation of :data:`LATENT_STD` (the reference divides its latents
  by 8 to bring them into about ±1.5). Labels 0 … 2 are the positions in :data:`LATENT_DIGITS`.
  "train" holds 4 of every 5 images of those classes (in scikit-learn's order), "test" the fifth;
  the VAE sees only "train". The VAE is trained from :data:`VAE_SEED` (the ``seed`` argument does
  not change this data set) and cached under ``build/diffusion/vae/``; a missing, corrupt or
  stale cache is retrained (seconds), bit-identically for the same torch build.

:func:`decode_latent_digits` maps generated latents back to 8×8 images in [−1, 1].
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model.io import atomic_write_bytes

NAMES = ("ring", "latent-digits")
SPLITS = ("train", "test")

#: Ring (reference notebook): points per split, radius mean and standard deviation.
RING_POINTS = 10_000
RING_RADIUS = 0.7
RING_RADIUS_STD = 0.04

#: The three digit classes of ``latent-digits`` (ASSUMED: visually distinct shapes, as the
#: paper's H, K, U; their 2-D VAE latents separate well).
LATENT_DIGITS = (0, 1, 7)
#: Overall standard deviation of the scaled latents (ASSUMED; keeps the points in about ±1.5 like
#: the reference's latents / 8).
LATENT_STD = 0.5
#: VAE training: seed, epochs, batch, learning rate (reference: batch 64, lr 1e-3; it runs 20
#: epochs over ~18k EMNIST images ≈ 5.7k steps — here ~430 images, so 300 epochs ≈ 2.1k steps,
#: after which the test latents of the three digits are separated: 5-NN accuracy 1.0).
VAE_SEED = 0
VAE_EPOCHS = 300
VAE_BATCH = 64
VAE_LR = 1e-3
#: Cache format; bump when the VAE, its training or the latent mapping changes.
VAE_FORMAT = 1

ROOT = Path(__file__).resolve().parents[2]
VAE_CACHE_DIR = ROOT / "build" / "diffusion" / "vae"


# ------------------------------------------------------------------------------------------------
def _check_seed(owner: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"{owner}.seed = {seed!r}: out of range, allowed integer [0, 2**63 - 1]")
    return seed


def ring_points(n: int, seed: int, radius: float = RING_RADIUS,
                radius_std: float = RING_RADIUS_STD) -> torch.Tensor:
    """``n`` ring points (float32, (n, 2)) drawn from ``seed``: r ~ N(radius, radius_std²),
    angle ~ U[0, 2π)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10**8:
        raise ValueError(f"ring_points.n = {n!r}: out of range, allowed integer [1, 10**8]")
    _check_seed("ring_points", seed)
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(n, generator=g, dtype=torch.float64) * radius_std + radius
    a = torch.rand(n, generator=g, dtype=torch.float64) * (2.0 * math.pi)
    return torch.stack([r * a.cos(), r * a.sin()], dim=1).to(torch.float32)


# -- the VAE -------------------------------------------------------------------------------------
class DigitsVAE(nn.Module):
    """Conv-VAE for 8×8 images with a 2-D latent, shaped like the reference's ``convVAE``
    (stride-2 convolutions 1 → 8 → 16 channels, a 16-unit linear layer, μ and log σ² heads; the
    decoder mirrors it with transposed convolutions and a sigmoid)."""

    def __init__(self, latent: int = 2, c1: int = 8, c2: int = 16, lin: int = 16):
        super().__init__()
        self.c2 = c2
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)          # 8×8 → 4×4
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)         # 4×4 → 2×2
        self.fc1 = nn.Linear(4 * c2, lin)
        self.fc_mu = nn.Linear(lin, latent)
        self.fc_logvar = nn.Linear(lin, latent)
        self.fc3 = nn.Linear(latent, lin)
        self.fc4 = nn.Linear(lin, 4 * c2)
        self.deconv1 = nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, 1, 8, 8) in [0, 1] → (μ, log σ²), each (N, latent)."""
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (N, latent) → images (N, 1, 8, 8) in [0, 1]."""
        h = F.relu(self.fc4(F.relu(self.fc3(z)))).view(-1, self.c2, 2, 2)
        return torch.sigmoid(self.deconv2(F.relu(self.deconv1(h))))


def _digit_images() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Images of :data:`LATENT_DIGITS` in [0, 1] (N, 1, 8, 8), labels 0 … 2, and a boolean
    "test" mask (every fifth image of the selection)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    sel = np.isin(d.target, LATENT_DIGITS)
    imgs = torch.tensor(d.images[sel] / 16.0, dtype=torch.float32)[:, None]
    lab = torch.tensor([LATENT_DIGITS.index(int(v)) for v in d.target[sel]], dtype=torch.int64)
    test = (np.arange(len(lab)) % 5) == 4
    return imgs, lab, test


def train_vae(seed: int = VAE_SEED, epochs: int = VAE_EPOCHS, progress: bool = False) -> dict:
    """Train :class:`DigitsVAE` on the "train" images of :data:`LATENT_DIGITS` from ``seed``
    (loss: binary cross-entropy + KL, summed per image, averaged over the batch) and return the
    cache record (state dict, latent centre and scale, the scaled latents of both splits)."""
    _check_seed("train_vae", seed)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 100_000:
        raise ValueError(f"train_vae.epochs = {epochs!r}: out of range, allowed [1, 100000]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # one thread: the same bits whatever the caller's setting
    try:
        return _train_vae(seed, epochs, progress)
    finally:
        torch.set_num_threads(threads)


def _train_vae(seed: int, epochs: int, progress: bool) -> dict:
    imgs, lab, test = _digit_images()
    tr = torch.as_tensor(~test)
    x_tr = imgs[tr]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = DigitsVAE()
    g = torch.Generator().manual_seed(seed ^ 0x7AE)
    opt = torch.optim.Adam(vae.parameters(), lr=VAE_LR)
    it = range(epochs)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="train VAE", unit="epoch", mininterval=1.0)
    vae.train()
    for _ in it:
        perm = torch.randperm(len(x_tr), generator=g)
        for s in range(0, len(x_tr), VAE_BATCH):
            xb = x_tr[perm[s:s + VAE_BATCH]]
            mu, logvar = vae.encode(xb)
            z = mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp()
            rec = F.binary_cross_entropy(vae.decode(z), xb, reduction="sum")
            kl = -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum()
            loss = (rec + kl) / len(xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    vae.eval()
    with torch.no_grad():
        mu_all = vae.encode(imgs)[0].to(torch.float64)
    center = mu_all[tr].mean(0)
    scale = float((mu_all[tr] - center).std()) / LATENT_STD
    z_all = ((mu_all - center) / scale).to(torch.float32)
    te = torch.as_tensor(test)
    return {"format": VAE_FORMAT, "digits": list(LATENT_DIGITS), "seed": seed, "epochs": epochs,
            "state_dict": vae.state_dict(), "center": center.tolist(), "scale": scale,
            "train": (z_all[tr], lab[tr]), "test": (z_all[te], lab[te])}


def vae_cache_path(seed: int = VAE_SEED, epochs: int = VAE_EPOCHS,
                   cache_dir: Path | str | None = None) -> Path:
    d = Path(cache_dir) if cache_dir is not None else VAE_CACHE_DIR
    digits = "".join(str(v) for v in LATENT_DIGITS)
    return d / f"latent-digits-v{VAE_FORMAT}-d{digits}-s{seed}-e{epochs}.pt"


def _valid(rec, seed: int, epochs: int) -> bool:
    try:
        return (rec["format"] == VAE_FORMAT and rec["digits"] == list(LATENT_DIGITS)
                and rec["seed"] == seed and rec["epochs"] == epochs
                and all(isinstance(rec[s][0], torch.Tensor) and rec[s][0].shape[1:] == (2,)
                        for s in SPLITS))
    except (KeyError, TypeError, IndexError, AttributeError):
        return False


def load_vae(seed: int = VAE_SEED, epochs: int = VAE_EPOCHS,
             cache_dir: Path | str | None = None, progress: bool = False) -> dict:
    """The VAE cache record (see :func:`train_vae`), from ``build/diffusion/vae/`` or trained and
    written there (atomically) when missing, unreadable or of another format."""
    path = vae_cache_path(seed, epochs, cache_dir)
    if path.exists():
        try:
            rec = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:                   # corrupt or foreign file: rebuilt below
            rec = None
        if rec is not None and _valid(rec, seed, epochs):
            return rec
    rec = train_vae(seed, epochs, progress=progress)
    buf = io.BytesIO()
    torch.save(rec, buf)
    atomic_write_bytes(path, buf.getvalue())
    return rec


def decode_latent_digits(z: torch.Tensor, rec: dict | None = None) -> torch.Tensor:
    """Scaled latents ``z`` (N, 2) (the ``latent-digits`` coordinates) → 8×8 images
    (N, 1, 8, 8) in [−1, 1] through the VAE decoder (``rec`` from :func:`load_vae`, default the
    cached default VAE)."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"decode_latent_digits.z: shape {tuple(getattr(z, 'shape', ()))}, must "
                         f"be (N, 2)")
    rec = load_vae() if rec is None else rec
    vae = DigitsVAE()
    vae.load_state_dict(rec["state_dict"])
    vae.eval()
    mu = z.to(torch.float64) * rec["scale"] + torch.tensor(rec["center"], dtype=torch.float64)
    with torch.no_grad():
        return vae.decode(mu.to(torch.float32)) * 2.0 - 1.0


# -- the loader ----------------------------------------------------------------------------------
def load_2d(name: str, split: str = "train", seed: int = 0):
    """The 2-D data set ``name`` (:data:`NAMES`) as a ``model.diffusion.data.Dataset`` of kind
    "points": ``x`` (N, 2) float32; ``y`` int64 labels 0 … 2 and ``classes`` 3 for latent-digits,
    ``None`` for the ring."""
    from model.diffusion.data import Dataset       # lazy: data.py dispatches to this module
    if name not in NAMES:
        raise ValueError(f"load_2d.name = {name!r}: unknown, allowed {NAMES}")
    if split not in SPLITS:
        raise ValueError(f"load_2d.split = {split!r}: unknown, allowed {SPLITS}")
    _check_seed("load_2d", seed)
    if name == "ring":
        # Two independent streams per seed: train = 2·seed, test = 2·seed + 1.
        sub = 2 * (seed % 2**62) + (split == "test")
        return Dataset(name=name, kind="points", x=ring_points(RING_POINTS, sub), y=None,
                       classes=None, shape=(2,))
    rec = load_vae()
    x, y = rec[split]
    return Dataset(name=name, kind="points", x=x.clone(), y=y.clone(), classes=len(LATENT_DIGITS),
                   shape=(2,))


__all__ = ["LATENT_DIGITS", "NAMES", "RING_POINTS", "DigitsVAE", "decode_latent_digits",
           "load_2d", "load_vae", "ring_points", "train_vae", "vae_cache_path"]
