"""Shared fixtures: a tiny generated scenes-style dataset (no Go binary needed) and repo paths."""
import json
import os
import random
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
REPO = os.path.dirname(TRAINING)
sys.path.insert(0, TRAINING)

SCHEMA = {
    "driving": [
        {"name": "vehicle", "values": ["none", "car", "truck", "bus"]},
        {"name": "vehicle_color", "values": ["none", "red", "blue", "green", "yellow", "white"]},
        {"name": "lane", "values": ["none", "left", "center", "right"]},
        {"name": "light", "values": ["red", "green"]},
        {"name": "pedestrian", "values": ["no", "yes"]},
        {"name": "time", "values": ["day", "night"]},
        {"name": "weather", "values": ["clear", "rain"]},
    ],
    "surveillance": [
        {"name": "place", "values": ["parking_lot", "corridor"]},
        {"name": "people", "values": ["none", "one", "two", "three"]},
        {"name": "vehicle_color", "values": ["none", "red", "blue", "green", "yellow", "white"]},
        {"name": "vehicle_side", "values": ["none", "left", "right"]},
        {"name": "door", "values": ["closed", "open"]},
        {"name": "time", "values": ["day", "night"]},
    ],
}
RGB = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "yellow": (230, 210, 40), "white": (245, 245, 245)}


def make_sample(domain, rng):
    """Returns (PIL image 96x54, caption, slots) drawn with the scenes grammar."""
    night = rng.random() < 0.5
    im = Image.new("RGB", (96, 54), (20, 20, 40) if night else (120, 170, 230))
    d = ImageDraw.Draw(im)
    if domain == "driving":
        kind = rng.choice(["none", "car", "truck", "bus"])
        col = "none" if kind == "none" else rng.choice(list(RGB))
        lane = "none" if kind == "none" else rng.choice(["left", "center", "right"])
        light = rng.choice(["red", "green"])
        ped = rng.choice(["no", "yes"])
        weather = rng.choice(["clear", "rain"])
        d.rectangle([0, 27, 95, 53], fill=(70, 70, 70))
        d.rectangle([44, 2, 52, 12], fill=(220, 0, 0) if light == "red" else (0, 220, 0))
        if kind != "none":
            x = {"left": 10, "center": 38, "right": 66}[lane]
            d.rectangle([x, 32, x + 20, 48], fill=RGB[col])
        if ped == "yes":
            d.rectangle([86, 30, 90, 50], fill=(250, 180, 120))
        slots = {"vehicle": kind, "vehicle_color": col, "lane": lane, "light": light, "pedestrian": ped,
                 "time": "night" if night else "day", "weather": weather}
        veh = "no vehicle ahead" if kind == "none" else f"a {col} {kind} in the {lane} lane"
        cap = f"{veh}, the traffic light is {light}, {'a pedestrian is crossing' if ped == 'yes' else 'no pedestrian'}, " \
              f"{'night' if night else 'daytime'}, {weather}."
    else:
        place = rng.choice(["parking_lot", "corridor"])
        people = rng.choice(["none", "one", "two", "three"])
        col = "none" if place == "corridor" else rng.choice(["none"] + list(RGB))
        side = "none" if col == "none" else rng.choice(["left", "right"])
        door = rng.choice(["closed", "open"])
        for i in range(["none", "one", "two", "three"].index(people)):
            d.rectangle([10 + 12 * i, 20, 16 + 12 * i, 45], fill=(250, 180, 120))
        d.rectangle([44, 5, 54, 25], fill=(10, 10, 10) if door == "open" else (140, 90, 40))
        if col != "none":
            x = 5 if side == "left" else 70
            d.rectangle([x, 40, x + 20, 52], fill=RGB[col])
        slots = {"place": place, "people": people, "vehicle_color": col, "vehicle_side": side, "door": door,
                 "time": "night" if night else "day"}
        pw = {"none": "no people", "one": "one person", "two": "two people", "three": "three people"}[people]
        veh = "no parked vehicle" if col == "none" else f"a {col} car parked on the {side}"
        cap = f"{'a parking lot' if place == 'parking_lot' else 'a corridor'}, {pw}, {veh}, the door is {door}, " \
              f"{'night' if night else 'daytime'}."
    return im, cap, slots


def write_dataset(root, n, seed=0):
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    with open(os.path.join(root, "schema.json"), "w") as f:
        json.dump(SCHEMA, f)
    with open(os.path.join(root, "captions.jsonl"), "w") as f:
        for i in range(n):
            dom = ["driving", "surveillance"][i % 2]
            im, cap, slots = make_sample(dom, rng)
            name = f"images/{dom}_{seed}_{i:06d}.png"
            im.save(os.path.join(root, name))
            f.write(json.dumps({"image": name, "domain": dom, "seed": seed, "index": i, "caption": cap, "slots": slots}) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("scenes")), 48, seed=1)


@pytest.fixture(scope="session")
def tiny_val(tmp_path_factory):
    return write_dataset(str(tmp_path_factory.mktemp("scenes_val")), 8, seed=2)


@pytest.fixture(scope="session")
def repo():
    return REPO
