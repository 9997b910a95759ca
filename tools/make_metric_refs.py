#!/usr/bin/env python3
"""Reference values for camwatch's faithfulness metrics (src/cam/metrics.rs).

On the timm res2net50d fixture with its classifier scaled down (saved as
`metrics_r50.pth`) and its six samples (made by make_fixtures.py), for the GradCAM and
HiResCAM maps pytorch-grad-cam computes (min-max scaled and resized to the input, saved
as `cam.<method>`), with the predicted class as target:

- `confidence.<method>`: pytorch-grad-cam's CamMultImageConfidenceChange with a softmax
  target;
- `road.<method>`: pytorch-grad-cam's ROADCombined, default percentiles, with the
  imputer's noise set to zero (camwatch adds its own seeded noise, so only noiseless
  runs can be compared);
- `deletion.<method>`, `insertion.<method>`: a NumPy implementation of the definition in
  issue 13 / docs/trust.md (n = 16 steps, ties by index, trapezoid rule).

Usage: make_metric_refs.py FIXTURES_DIR    (writes FIXTURES_DIR/metrics.ref.safetensors)
"""

import os
import sys

import numpy as np

STEPS = 16
FC_SCALE = 0.01
METHODS = ["gradcam", "hirescam"]


def softmax_target(model, x, targets):
    import torch
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    return probs[np.arange(len(targets)), targets]


def deletion_insertion(model, x, cams, targets, steps=STEPS):
    """The definition, written plainly: order pixels by the map (highest first, ties by
    index), change the first ceil(i/n·H·W) of them in every channel, softmax target."""
    n_img, channels, h, w = x.shape
    pixels = h * w
    deletion, insertion = [], []
    for b in range(n_img):
        order = np.argsort(-cams[b].reshape(-1), kind="stable")
        deleted, inserted = [], []
        for i in range(steps + 1):
            k = int(np.ceil(i / steps * pixels))
            chosen = order[:k]
            d = x[b].reshape(channels, -1).copy()
            d[:, chosen] = 0
            ins = np.zeros_like(d)
            ins[:, chosen] = x[b].reshape(channels, -1)[:, chosen]
            deleted.append(d.reshape(channels, h, w))
            inserted.append(ins.reshape(channels, h, w))
        t = np.full(steps + 1, targets[b])
        pd = softmax_target(model, np.float32(deleted), t)
        pi = softmax_target(model, np.float32(inserted), t)
        trapezoid = lambda p: float(np.sum((p[1:] + p[:-1]) / 2) / steps)  # noqa: E731
        deletion.append(trapezoid(pd.astype(np.float64)))
        insertion.append(trapezoid(pi.astype(np.float64)))
    return np.float32(deletion), np.float32(insertion)


def main():
    import timm
    import torch
    from pytorch_grad_cam.metrics import road
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    from safetensors.numpy import load_file, save_file

    out = sys.argv[1]
    refs = load_file(os.path.join(out, "cam_timm.ref.safetensors"))
    x = refs["input"]
    net = timm.create_model("res2net50d", num_classes=4)
    net.load_state_dict(torch.load(os.path.join(out, "timm_r50.pth")))
    # The fixture's random network is certain of everything (p ≈ 1 whatever the input),
    # which no metric can tell apart: a gentler classifier makes p move with the input.
    with torch.no_grad():
        net.fc.weight.mul_(FC_SCALE)
        net.fc.bias.mul_(FC_SCALE)
    net.eval()
    torch.save(net.state_dict(), os.path.join(out, "metrics_r50.pth"))
    with torch.no_grad():
        targets = net(torch.from_numpy(x)).argmax(1).numpy()

    # Noiseless imputation on the reference side too.
    road.NoisyLinearImputer.__init__.__defaults__ = (0.0, road.neighbors_weights)

    result = {"input": x, "target": np.float32(targets)}
    xt = torch.from_numpy(x)
    from pytorch_grad_cam import GradCAM, HiResCAM
    for method, cls in zip(METHODS, [GradCAM, HiResCAM]):
        with cls(model=net, target_layers=[net.layer4]) as cam:
            cams = cam(input_tensor=xt, targets=None)
        softmax = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
        result[f"cam.{method}"] = cams
        result[f"confidence.{method}"] = np.float32(
            CamMultImageConfidenceChange()(xt, cams, softmax, net)).reshape(-1)
        result[f"road.{method}"] = np.float32(
            road.ROADCombined()(xt, cams, softmax, net)).reshape(-1)
        result[f"deletion.{method}"], result[f"insertion.{method}"] = deletion_insertion(
            net, x, cams, targets)
        print(method, {k: v for k, v in result.items() if k.endswith(method) and v.ndim == 1})
    with torch.no_grad():
        result["probs"] = torch.softmax(net(xt), dim=1).numpy()
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in result.items()},
              os.path.join(out, "metrics.ref.safetensors"))


if __name__ == "__main__":
    main()
