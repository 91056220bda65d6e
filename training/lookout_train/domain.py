"""Domain profile: a small statistic of the encoder's training frames, shipped with an export as
domain_profile.json, from which the engine flags frames that look nothing like what the model was trained
on (records' in_domain and domain_distance; docs/MODELS.md, "Out-of-domain flag").

The statistic: e = mean over tokens of encoder_model.onnx's last_hidden_state [T, D] (the same pooled
embedding the attribute heads read). Training-domain embeddings lie near a low-dimensional subspace; the profile
holds their mean mu and the top K principal directions W [K, D] over the fit half of held-out frames. A frame's
distance is the root mean square of what that subspace leaves unexplained:
    c = e - mu,   r = c - W^T (W c),   d = sqrt(mean_j r_j^2)
The threshold is the given percentile of d over the other, calibration, half; a frame is in domain when
d <= threshold. (A distance to the mean alone does not work: the synthetic frames form several clusters
and real photos land between them, closer to the mean than most synthetic frames; docs/MODELS.md.)

    python -m lookout_train domain fit --model DIR --data DATASET [--data DATASET2] --trained-on "..."
    python -m lookout_train domain score --model DIR IMAGE...    (one "path<TAB>distance<TAB>in_domain" line each)

The encoder runs on ONNX Runtime, on the exported graph the engine runs, so the Go and Python distances agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

from . import data

PROFILE = "domain_profile.json"
STATISTIC = ("d = sqrt(mean_j r_j^2), r = c - components^T (components c), c = e - mean, where e is the mean "
             "over tokens of encoder_model.onnx last_hidden_state")


class Encoder:
    """encoder_model.onnx with the folder's preprocessing (ViTImageProcessor: bilinear resize, (x/255-m)/s)."""

    def __init__(self, model_dir: str):
        import onnxruntime as ort

        with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
            pre = json.load(f)
        size = pre.get("size", 224)
        self.size = size["height"] if isinstance(size, dict) else int(size)
        self.mean = np.asarray(pre.get("image_mean", [0.5] * 3), np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(pre.get("image_std", [0.5] * 3), np.float32).reshape(1, 3, 1, 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        self.sess = ort.InferenceSession(os.path.join(model_dir, "encoder_model.onnx"), so,
                                         providers=["CPUExecutionProvider"])

    def pooled_u8(self, u8: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 [N,3,S,S] -> float64 pooled embeddings [N,D]."""
        out = []
        for i in range(0, len(u8), batch):
            x = (u8[i:i + batch].astype(np.float32) * np.float32(1 / 255) - self.mean) / self.std
            h = self.sess.run(["last_hidden_state"], {"pixel_values": x.astype(np.float32)})[0]
            out.append(h.astype(np.float64).mean(axis=1))
        return np.concatenate(out)

    def pooled_files(self, paths: list[str]) -> np.ndarray:
        u8 = np.stack([data.resize_u8(Image.open(p), self.size) for p in paths])
        return self.pooled_u8(u8)


def round_list(xs, digits=6):
    return [float(f"{x:.{digits}g}") for x in xs]


def distances(profile: dict, emb: np.ndarray) -> np.ndarray:
    mu = np.asarray(profile["mean"], np.float64)
    w = np.asarray(profile["components"], np.float64)
    c = emb - mu
    r = c - (c @ w.T) @ w
    return np.sqrt((r * r).mean(axis=1))


def fit(emb: np.ndarray, percentile: float, k: int, seed: int = 0) -> tuple[dict, dict]:
    """Mean and principal directions on a random half, threshold at the percentile of the other half's distances."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(emb))
    half = len(emb) // 2
    fit_e, cal_e = emb[idx[:half]], emb[idx[half:]]
    mu = fit_e.mean(axis=0)
    _, s, vt = np.linalg.svd(fit_e - mu, full_matrices=False)
    k = min(k, len(vt), emb.shape[1] - 1)  # a full-rank subspace would explain everything
    explained = float((s[:k] ** 2).sum() / (s ** 2).sum())
    # Round before calibrating, so the threshold fits the stored numbers.
    prof = {"mean": round_list(mu), "components": [round_list(v) for v in vt[:k]]}
    d = distances(prof, cal_e)
    prof["threshold"] = float(np.percentile(d, percentile))
    stats = {"fit_frames": int(half), "calibration_frames": int(len(cal_e)), "explained_variance": round(explained, 4),
             "calibration_median": float(np.median(d)), "calibration_max": float(d.max())}
    return prof, stats


def cmd_fit(a) -> int:
    enc = Encoder(a.model)
    embs = []
    for root in a.data:
        ds = data.load(root, enc.size)
        embs.append(enc.pooled_u8(ds.pixels))
    emb = np.concatenate(embs)
    prof, stats = fit(emb, a.percentile, a.components, a.seed)
    out = {
        "version": 1,
        "trained_on": a.trained_on,
        "statistic": STATISTIC,
        "dims": len(prof["mean"]),
        "rank": len(prof["components"]),
        "percentile": a.percentile,
        "threshold": round(prof["threshold"], 6),
        "calibration": {"sources": [os.path.basename(os.path.normpath(r)) for r in a.data], **stats},
        "mean": prof["mean"],
        "components": prof["components"],
    }
    dst = os.path.join(a.model, PROFILE)
    with open(dst, "w") as f:
        f.write(dumps(out))
    print(f"domain: {dst}: {stats['fit_frames']} fit + {stats['calibration_frames']} calibration frames, "
          f"threshold {out['threshold']:.4f} (p{a.percentile}), calibration median {stats['calibration_median']:.4f}")
    return 0


def dumps(out: dict) -> str:
    """JSON with the header indented and each vector on one line (reviewable, about 45 KB at K=32)."""
    head = {k: v for k, v in out.items() if k not in ("mean", "components")}
    text = json.dumps(head, indent=1)[:-2]
    text += ',\n "mean": ' + json.dumps(out["mean"]) + ',\n "components": [\n  '
    text += ",\n  ".join(json.dumps(c) for c in out["components"]) + "\n ]\n}\n"
    return text


def load_profile(model_dir: str) -> dict:
    p = os.path.join(model_dir, PROFILE)
    if not os.path.isfile(p):
        raise data.DataError(f"{p}: missing; create it with `python -m lookout_train domain fit --model {model_dir} ...`")
    with open(p) as f:
        return json.load(f)


def cmd_score(a) -> int:
    prof = load_profile(a.model)
    d = distances(prof, Encoder(a.model).pooled_files(a.images))
    for p, x in zip(a.images, d):
        print(f"{p}\t{x:.6f}\t{'true' if x <= prof['threshold'] else 'false'}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lookout_train domain", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="write DIR/domain_profile.json from held-out frames")
    f.add_argument("--model", required=True, help="exported model folder (encoder_model.onnx)")
    f.add_argument("--data", required=True, action="append", help="held-out `lookout scenes dataset` folder(s)")
    f.add_argument("--trained-on", required=True, help="one sentence naming the training data, for the warning")
    f.add_argument("--percentile", type=float, default=99.9)
    f.add_argument("--components", type=int, default=48, help="principal directions kept (K)")
    f.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score", help="print each image's distance and in_domain")
    s.add_argument("--model", required=True)
    s.add_argument("images", nargs="+")
    a = ap.parse_args(argv)
    try:
        return cmd_fit(a) if a.cmd == "fit" else cmd_score(a)
    except data.DataError as e:
        print(f"domain: {e}", file=sys.stderr)
        return 1
