"""PyTorch peer of cdcgan's default recipe (the `sngan` preset), for `cargo xtask bench`.

torch_ref.py's generator with an EMA copy (decay 0.999, updated every step as cdcgan does),
and a discriminator whose conv1, conv2 and fc are spectrally normalised
(torch.nn.utils.spectral_norm: one power iteration per forward in training, as cdcgan's), with
a bias instead of BatchNorm after conv2 and a free projection table whose row for the label is
dotted with the 6272 features. Losses, Adam and the step are torch_ref.py's.

  python sngan_ref.py TORCH_REF.py [--threads 2] [--batches 32,64,128] [--steps 20]
"""
import argparse, importlib.util, json

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


def load_ref(path):
    spec = importlib.util.spec_from_file_location("torch_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class SNProjDisc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(11, 64, 4, 2, 1, bias=True))
        self.conv2 = spectral_norm(nn.Conv2d(64, 128, 4, 2, 1, bias=True))
        self.fc = spectral_norm(nn.Linear(128 * 7 * 7, 1))
        self.proj = nn.Embedding(10, 128 * 7 * 7)

    def forward(self, x, y):
        planes = F.one_hot(y, 10).float()[:, :, None, None].expand(-1, 10, 28, 28)
        h = F.leaky_relu(self.conv1(torch.cat([x, planes], 1)), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2).flatten(1)
        return self.fc(h).squeeze(1) + (self.proj(y) * h).sum(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torch_ref")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="32,64,128")
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    ref = load_ref(a.torch_ref)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"threads": a.threads}
    for b in [int(s) for s in a.batches.split(",")]:
        p = ref.Pair()
        ref.init(p.gen)
        p.disc = SNProjDisc()
        og = torch.optim.Adam(p.gen.parameters(), 2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(p.disc.parameters(), 2e-4, betas=(0.5, 0.999))
        params = [q for q in p.gen.parameters()]
        ema = [q.detach().clone() for q in params]
        x = torch.rand(b, 1, 28, 28) * 2 - 1
        y = torch.randint(0, 10, (b,))

        def step():
            ref.train_step(p, og, od, x, y)
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, 1 - 0.999)

        t = ref.median_time(step, a.steps)
        out[f"train_sngan_b{b}_img_s"] = round(b / t, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
