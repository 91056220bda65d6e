"""Python mirror of synth.Parse (the caption grammar of lookout scenes), for evaluation.

parse(caption) -> (domain, slots) or None when the caption is not exactly a grammar caption.
"""
from __future__ import annotations

COLORS = ["red", "blue", "green", "yellow", "white"]
KINDS = ["car", "truck", "bus"]
LANES = ["left", "center", "right"]
PEOPLE = {"no people": "none", "one person": "one", "two people": "two", "three people": "three"}
PLACES = {"a parking lot": "parking_lot", "a corridor": "corridor"}
TIMES = {"daytime": "day", "night": "night"}


def parse(caption: str):
    c = caption.strip()
    if not c.endswith("."):
        return None
    p = c[:-1].split(", ")
    if len(p) != 5:
        return None
    if p[0] in PLACES:
        return _surv(p)
    return _driving(p)


def _driving(p):
    s = {}
    if p[0] == "no vehicle ahead":
        s.update(vehicle="none", vehicle_color="none", lane="none")
    else:
        w = p[0].split(" ")
        if not (len(w) == 7 and w[0] == "a" and w[3] == "in" and w[4] == "the" and w[6] == "lane"
                and w[1] in COLORS and w[2] in KINDS and w[5] in LANES):
            return None
        s.update(vehicle_color=w[1], vehicle=w[2], lane=w[5])
    pre = "the traffic light is "
    if not p[1].startswith(pre) or p[1][len(pre):] not in ("red", "green"):
        return None
    s["light"] = p[1][len(pre):]
    if p[2] == "a pedestrian is crossing":
        s["pedestrian"] = "yes"
    elif p[2] == "no pedestrian":
        s["pedestrian"] = "no"
    else:
        return None
    if p[3] not in TIMES or p[4] not in ("clear", "rain"):
        return None
    s["time"], s["weather"] = TIMES[p[3]], p[4]
    return "driving", s


def _surv(p):
    s = {"place": PLACES[p[0]]}
    if p[1] not in PEOPLE:
        return None
    s["people"] = PEOPLE[p[1]]
    if p[2] == "no parked vehicle":
        s.update(vehicle_color="none", vehicle_side="none")
    else:
        w = p[2].split(" ")
        if not (len(w) == 7 and w[0] == "a" and w[2] == "car" and w[3] == "parked" and w[4] == "on"
                and w[5] == "the" and w[1] in COLORS and w[6] in ("left", "right")):
            return None
        if s["place"] == "corridor":
            return None
        s.update(vehicle_color=w[1], vehicle_side=w[6])
    pre = "the door is "
    if not p[3].startswith(pre) or p[3][len(pre):] not in ("open", "closed"):
        return None
    s["door"] = p[3][len(pre):]
    if p[4] not in TIMES:
        return None
    s["time"] = TIMES[p[4]]
    return "surveillance", s


def slot_score(pred_caption: str, truth_slots: dict) -> float:
    """Fraction of the truth's slots the predicted caption gets right (0 if it does not parse)."""
    r = parse(pred_caption)
    if r is None or not truth_slots:
        return 0.0
    _, s = r
    return sum(1 for k, v in truth_slots.items() if s.get(k) == v) / len(truth_slots)
