"""Scenes dataset loading (the layout `lookout scenes dataset` writes) and ViT preprocessing.

Layout: DIR/images/*.png, DIR/captions.jsonl (one JSON object per line: image (path relative to DIR),
domain, seed, index, caption, slots), DIR/schema.json ({"driving": [{"name", "values"}], "surveillance": [...]}).

Pixels are resized exactly like ViTImageProcessor (PIL bilinear, antialiased, to size x size, on the uint8
RGB image) and cached as uint8 in DIR/.cache/pixels_<size>.npy; normalisation ((x/255 - mean)/std) happens per
batch in float32.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image


class DataError(Exception):
    """A dataset folder that cannot be used; str() is one line naming the file and the fix."""


@dataclass
class Dataset:
    root: str
    records: list[dict]
    schema: dict
    pixels: np.ndarray | None = None  # uint8 [N,3,S,S]

    def subset(self, idx) -> "Dataset":
        idx = list(idx)
        return Dataset(self.root, [self.records[i] for i in idx], self.schema,
                       None if self.pixels is None else self.pixels[idx])

    def captions(self) -> list[str]:
        return [r["caption"] for r in self.records]


def load_records(root: str) -> tuple[list[dict], dict]:
    cj = os.path.join(root, "captions.jsonl")
    if not os.path.isfile(cj):
        raise DataError(f"dataset {root}: no captions.jsonl; create it with `lookout scenes dataset --out {root}`")
    recs = []
    with open(cj) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
                _ = r["image"], r["caption"], r["domain"], r["slots"]
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{cj}:{n}: bad record ({e}); regenerate the dataset") from e
            recs.append(r)
    if not recs:
        raise DataError(f"{cj}: empty; regenerate the dataset")
    schema = {}
    sp = os.path.join(root, "schema.json")
    if os.path.isfile(sp):
        with open(sp) as f:
            schema = json.load(f)
    return recs, schema


def resize_u8(img: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 [3,size,size], resized as ViTImageProcessor does (PIL BILINEAR on the uint8 image)."""
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), resample=Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_pixels(root: str, records: list[dict], size: int, progress: bool = True) -> np.ndarray:
    cache_dir = os.path.join(root, ".cache")
    cache = os.path.join(cache_dir, f"pixels_{size}.npy")
    if os.path.isfile(cache):
        arr = np.load(cache)
        if arr.shape[0] == len(records):
            return arr
    out = np.empty((len(records), 3, size, size), dtype=np.uint8)
    for i, r in enumerate(records):
        p = os.path.join(root, r["image"])
        try:
            with Image.open(p) as im:
                out[i] = resize_u8(im, size)
        except OSError as e:
            raise DataError(f"image {p}: cannot read ({e}); regenerate the dataset") from e
        if progress and (i + 1) % 2000 == 0:
            print(f"  loaded {i + 1}/{len(records)} images from {root}", flush=True)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        np.save(cache, out)
    except OSError:
        pass
    return out


def load(root: str, size: int) -> Dataset:
    recs, schema = load_records(root)
    return Dataset(root, recs, schema, load_pixels(root, recs, size))


def normalize(u8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """uint8 torch tensor [B,3,H,W] -> float32 pixel_values like ViTImageProcessor (x/255 - mean) / std."""
    import torch

    x = u8.to(torch.float32) * (1 / 255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def split_fraction(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A random fraction (0..1] of ds, deterministic by seed."""
    n = max(1, int(round(len(ds.records) * fraction)))
    idx = list(range(len(ds.records)))
    random.Random(seed).shuffle(idx)
    return ds.subset(sorted(idx[:n]))


def by_domain(ds: Dataset, domain: str | None) -> Dataset:
    if not domain:
        return ds
    idx = [i for i, r in enumerate(ds.records) if r["domain"] == domain]
    if not idx:
        raise DataError(f"dataset {ds.root}: no records of domain {domain!r}; use driving or surveillance")
    return ds.subset(idx)


# Attribute space shared by both domains: a "domain" head plus one head per slot name (union over domains);
# a slot that does not exist in the image's domain has the class "n/a".
def attribute_space(schema: dict) -> list[dict]:
    domains = sorted(schema)
    attrs = [{"name": "domain", "classes": domains, "output": "probs_domain"}]
    seen = {}
    for d in domains:
        for spec in schema[d]:
            cl = seen.setdefault(spec["name"], [])
            for v in spec["values"]:
                if v not in cl:
                    cl.append(v)
    for name, cl in seen.items():
        if not all(name in [s["name"] for s in schema[d]] for d in domains):
            cl = cl + ["n/a"]
        attrs.append({"name": name, "classes": cl, "output": f"probs_{name}"})
    return attrs


def attribute_targets(records: list[dict], attrs: list[dict]) -> np.ndarray:
    """int64 [N, n_attrs]: class index per attribute (n/a where the slot is absent, -100 if unknown)."""
    out = np.full((len(records), len(attrs)), -100, dtype=np.int64)
    for i, r in enumerate(records):
        for j, a in enumerate(attrs):
            v = r["domain"] if a["name"] == "domain" else r["slots"].get(a["name"], "n/a")
            if v in a["classes"]:
                out[i, j] = a["classes"].index(v)
    return out
