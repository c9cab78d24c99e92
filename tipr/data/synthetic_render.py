"""Drawing of SynthPEDES pedestrians with PIL: body, garments, accessories, background and camera effects.

A figure is laid out in person units (height 1, x = 0 on the body axis, y = 0 at the top of the head) and
mapped onto the canvas; a side view is drawn facing right and mirrored for "left".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

COLOUR_RGB: dict[str, RGB] = {
    "black": (30, 30, 33), "white": (236, 236, 232), "grey": (128, 128, 131), "red": (198, 32, 40),
    "blue": (38, 78, 198), "navy": (30, 40, 94), "light blue": (138, 184, 230), "green": (40, 134, 62),
    "yellow": (238, 206, 46), "orange": (240, 128, 32), "pink": (238, 150, 184), "purple": (118, 50, 150),
    "brown": (112, 72, 42), "beige": (214, 194, 152),
}
HAIR_RGB: dict[str, RGB] = {"black": (24, 21, 21), "brown": (96, 60, 32), "blonde": (222, 190, 118),
                            "grey": (168, 168, 168), "red": (170, 72, 34)}
SKIN_RGB: dict[str, RGB] = {"light": (232, 192, 164), "medium": (204, 152, 112), "dark": (122, 82, 56)}
_WALLS = [(196, 196, 190), (170, 160, 150), (150, 88, 70), (210, 200, 178), (120, 130, 140), (176, 206, 232),
          (90, 120, 80), (230, 226, 214), (110, 100, 95)]
_GROUNDS = [(120, 120, 118), (150, 146, 136), (80, 82, 86), (176, 160, 130), (100, 130, 80), (190, 186, 180)]


def shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)  # type: ignore[return-value]


def jitter(colour: RGB, rng: np.random.Generator, amount: int = 12) -> RGB:
    """The same colour name in a slightly different shade (one per identity)."""
    offsets = rng.integers(-amount, amount + 1, 3)
    return tuple(int(min(255, max(0, c + d))) for c, d in zip(colour, offsets))  # type: ignore[return-value]


class _Canvas:
    """Draws shapes given in person units; ``paint`` fills a group of shapes with a plain or patterned cloth."""

    def __init__(self, img: Image.Image, cx: float, top: float, hp: float):
        self.img, self.draw, self.cx, self.top, self.hp = img, ImageDraw.Draw(img), cx, top, hp

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.hp, self.top + y * self.hp)

    def w(self, v: float) -> int:
        return max(1, round(v * self.hp))

    def shape(self, draw: ImageDraw.ImageDraw, spec: tuple, fill: Any) -> None:
        kind = spec[0]
        if kind == "poly":
            draw.polygon([self.p(*q) for q in spec[1]], fill=fill)
        elif kind == "ellipse":
            _, x, y, rx, ry = spec
            (a, b), (c, d) = self.p(x - rx, y - ry), self.p(x + rx, y + ry)
            draw.ellipse([a, b, max(a, c), max(b, d)], fill=fill)
        elif kind == "capsule":  # a tapered limb segment with round ends
            _, (x0, y0), (x1, y1), w0, w1 = spec
            length = math.hypot(x1 - x0, y1 - y0) or 1e-6
            nx, ny = -(y1 - y0) / length, (x1 - x0) / length
            pts = [(x0 + nx * w0 / 2, y0 + ny * w0 / 2), (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
                   (x1 - nx * w1 / 2, y1 - ny * w1 / 2), (x0 - nx * w0 / 2, y0 - ny * w0 / 2)]
            draw.polygon([self.p(*q) for q in pts], fill=fill)
            self.shape(draw, ("ellipse", x0, y0, w0 / 2, w0 / 2), fill)
            self.shape(draw, ("ellipse", x1, y1, w1 / 2, w1 / 2), fill)
        elif kind == "line":
            _, pts, width = spec
            draw.line([self.p(*q) for q in pts], fill=fill, width=self.w(width))
        elif kind == "chord":
            _, x, y, rx, ry, start, end = spec
            (a, b), (c, d) = self.p(x - rx, y - ry), self.p(x + rx, y + ry)
            draw.chord([a, b, max(a, c), max(b, d)], start, end, fill=fill)

    def fill(self, specs: list[tuple], colour: Any) -> None:
        for spec in specs:
            self.shape(self.draw, spec, colour)

    def paint(self, specs: list[tuple], colour: RGB, pattern: str = "plain", colour2: RGB | None = None) -> None:
        if pattern not in ("stripes", "plaid") or colour2 is None:
            self.fill(specs, colour)
            return
        mask = Image.new("L", self.img.size, 0)
        mask_draw = ImageDraw.Draw(mask)
        for spec in specs:
            self.shape(mask_draw, spec, 255)
        layer = Image.new("RGB", self.img.size, colour)
        layer_draw = ImageDraw.Draw(layer)
        width, height = self.img.size
        period = max(3.0, 0.03 * self.hp)
        y = self.top + 0.17 * self.hp
        while y < height:  # bands follow the body, not the canvas
            if pattern == "stripes":
                layer_draw.rectangle([0, y, width, y + period * 0.45], fill=colour2)
            else:
                layer_draw.line([(0, y), (width, y)], fill=colour2, width=max(1, round(period * 0.3)))
            y += period if pattern == "stripes" else period * 1.3
        if pattern == "plaid":
            x = self.cx - 3 * period
            while x > 0:
                x -= period * 1.3
            dark = shade(colour, 0.6)
            while x < width:
                layer_draw.line([(x, 0), (x, height)], fill=colour2, width=max(1, round(period * 0.3)))
                layer_draw.line([(x + period * 0.65, 0), (x + period * 0.65, height)], fill=dark, width=1)
                x += period * 1.3
        self.img.paste(layer, (0, 0), mask)


def _polar(origin: tuple[float, float], length: float, angle_deg: float) -> tuple[float, float]:
    """The end of a segment hanging from ``origin``, turned ``angle_deg`` toward +x from straight down."""
    a = math.radians(angle_deg)
    return (origin[0] + length * math.sin(a), origin[1] + length * math.cos(a))


def _background(img: Image.Image, rng: np.random.Generator) -> None:
    """Wall, ground and clutter."""
    width, height = img.size
    draw = ImageDraw.Draw(img)
    wall = jitter(_WALLS[rng.integers(len(_WALLS))], rng, 18)
    ground = jitter(_GROUNDS[rng.integers(len(_GROUNDS))], rng, 14)
    horizon = height * rng.uniform(0.55, 0.8)
    draw.rectangle([0, 0, width, horizon], fill=wall)
    draw.rectangle([0, horizon, width, height], fill=ground)
    for _ in range(int(rng.integers(2, 7))):  # windows, doors, poles, bushes, signs
        kind = rng.integers(4)
        colour = jitter(tuple(int(v) for v in rng.integers(20, 236, 3)), rng, 0)  # type: ignore[arg-type]
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(0, 0.9) * horizon
        if kind == 0:
            draw.rectangle([x0, y0, x0 + rng.uniform(0.15, 0.5) * width, y0 + rng.uniform(0.05, 0.2) * height],
                           fill=shade(wall, rng.uniform(0.5, 0.85)))
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + rng.uniform(0.03, 0.08) * width, horizon + 0.02 * height], fill=colour)
        elif kind == 2:
            r = rng.uniform(0.1, 0.35) * width
            draw.ellipse([x0 - r, horizon - 1.6 * r, x0 + r, horizon + 0.2 * r],
                         fill=jitter((60, 110, 55), rng, 25))
        else:
            draw.rectangle([x0, y0, x0 + rng.uniform(0.1, 0.3) * width, y0 + rng.uniform(0.03, 0.1) * height],
                           fill=colour)
    line = shade(ground, rng.uniform(0.75, 0.9))
    for i in range(1, 4):  # paving joints
        y = horizon + (height - horizon) * (i / 4) ** 1.5
        draw.line([(0, y), (width, y)], fill=line, width=1)


def _figure(cv: _Canvas, a: dict[str, Any], view: str, rng: np.random.Generator, pal: dict[str, RGB]) -> None:
    side, back = view == "side", view == "back"
    female, build = a["gender"] == "female", {"slim": 0.88, "average": 1.0, "heavy": 1.2}[a["build"]]
    skin, hair = pal["skin"], pal["hair"]
    upper, lower, shoes = pal["upper"], pal["lower"], pal["shoes"]
    pattern, colour2 = a["upper_pattern"], pal.get("pattern")
    dark = (28, 28, 30)
    S = (0.092 if female else 0.106) * build  # shoulder half-width
    W = S * (0.74 if female else 0.8) * (1.1 if a["build"] == "heavy" else 1.0)
    Hh = S * (0.95 if female else 0.84)  # hip half-width
    hem = {"t-shirt": 0.53, "shirt": 0.52, "jacket": 0.51, "sweater": 0.52, "coat": 0.7}[a["upper_type"]]
    long_sleeves = a["upper_type"] != "t-shirt"
    swing = rng.uniform(-1, 1)

    # joints: (shoulder, elbow, hand) per arm, (hip, knee, ankle) per leg; [0] far/left, [1] near/right
    if side:
        shoulders = [(-0.005, 0.19), (0.005, 0.19)]
        arm_angles = [-swing * 26, swing * 26]
        bends = [rng.uniform(8, 30), rng.uniform(8, 30)]
        hips = [(0.0, 0.5), (0.0, 0.5)]
        thighs = [swing * 22, -swing * 22]
    else:
        shoulders = [(-S + 0.02, 0.19), (S - 0.02, 0.19)]
        arm_angles = [-rng.uniform(4, 13), rng.uniform(4, 13)]
        bends = [rng.uniform(-4, 6), -rng.uniform(-4, 6)]  # positive: the forearm turns toward the body
        hips = [(-Hh * 0.48, 0.5), (Hh * 0.48, 0.5)]
        spread = rng.uniform(1, 4)
        thighs = [-spread, spread]
    arms = []
    for i in range(2):
        elbow = _polar(shoulders[i], 0.165, arm_angles[i])
        hand = _polar(elbow, 0.15, arm_angles[i] + bends[i])
        arms.append([shoulders[i], elbow, hand])
    carry_arm = 1 if side else (0 if back else 1)
    if a["carry"] == "phone":  # forearm raised to look at the phone
        sh, el, _ = arms[carry_arm]
        el = _polar(sh, 0.16, 12 if side else (8 if carry_arm else -8))
        arms[carry_arm] = [sh, el, (el[0] + (0.07 if side else (-0.05 if carry_arm else 0.05)), el[1] - 0.06)]
    legs = []
    for i in range(2):
        knee = _polar(hips[i], 0.24, thighs[i])
        shin = thighs[i] - (rng.uniform(8, 24) if side and thighs[i] < 0 else 0)
        legs.append([hips[i], knee, _polar(knee, 0.22, shin)])
    if side:  # the lower foot touches the ground
        lift = 0.955 - max(legs[0][2][1], legs[1][2][1])
        legs = [[(x, y + lift) for x, y in leg] for leg in legs]

    def leg_specs(leg: list, upto: float = 1.0) -> list[tuple]:
        hip, knee, ankle = leg
        t = 0.085 * build
        if upto < 1.0:
            return [("capsule", hip, (hip[0] + (knee[0] - hip[0]) * upto, hip[1] + (knee[1] - hip[1]) * upto),
                     t * 1.05, t * 1.0)]
        return [("capsule", hip, knee, t, t * 0.8), ("capsule", knee, ankle, t * 0.75, t * 0.58)]

    def arm_specs(arm: list, sleeve: str) -> tuple[list, list]:
        sh, el, hand = arm
        t = 0.05 * build
        if sleeve == "long":
            return [("capsule", sh, el, t, t * 0.9), ("capsule", el, hand, t * 0.88, t * 0.75)], []
        mid = (sh[0] + (el[0] - sh[0]) * 0.5, sh[1] + (el[1] - sh[1]) * 0.5)
        return [("capsule", sh, mid, t * 1.15, t * 1.05)], [("capsule", sh, el, t * 0.8, t * 0.72),
                                                            ("capsule", el, hand, t * 0.7, t * 0.6)]

    def draw_leg(leg: list, f: float) -> None:
        kind = a["lower_type"]
        cloth, sk = shade(lower, f), shade(skin, f)
        if kind in ("shorts", "skirt"):
            cv.fill(leg_specs(leg), sk)
            if kind == "shorts":
                cv.fill(leg_specs(leg, 0.6), cloth)
        else:
            cv.fill(leg_specs(leg), cloth)
            if kind == "jeans":
                hip, knee, ankle = leg
                cv.fill([("line", [(hip[0] + 0.02, hip[1] + 0.02), (knee[0] + 0.018, knee[1]),
                                   (ankle[0] + 0.015, ankle[1] - 0.01)], 0.006)], shade(cloth, 1.35))
        ankle = leg[2]
        if side:
            cv.fill([("ellipse", ankle[0] + 0.022, ankle[1] + 0.018, 0.046, 0.021)], shade(shoes, f))
        else:
            cv.fill([("ellipse", ankle[0], ankle[1] + 0.018, 0.032, 0.022)], shade(shoes, f))

    def draw_arm(arm: list, f: float) -> None:
        cloth_specs, skin_specs = arm_specs(arm, "long" if long_sleeves else "short")
        cv.fill(skin_specs, shade(skin, f))
        cv.paint(cloth_specs, shade(upper, f * 0.92), pattern, colour2 and shade(colour2, f * 0.92))
        hand = arm[2]
        cv.fill([("ellipse", hand[0], hand[1] + 0.01, 0.021, 0.024)], shade(skin, f))

    def torso_specs() -> list[tuple]:
        if side:
            chest = 0.075 if female else 0.066
            belly = 0.02 if a["build"] == "heavy" else 0.0
            flare = 0.03 if a["upper_type"] == "coat" else 0.0
            return [("poly", [(-0.06, 0.17), (0.045, 0.17), (chest, 0.26), (0.058 + belly, 0.4),
                              (0.062 + flare, hem), (-0.068 - flare, hem), (-0.055, 0.4), (-0.068, 0.25)])]
        flare = Hh * (1.25 if a["upper_type"] == "coat" else 1.02)
        return [("poly", [(-S, 0.18), (-0.03, 0.165), (0.03, 0.165), (S, 0.18), (S * 0.94, 0.26), (W, 0.4),
                          (flare, hem), (-flare, hem), (-W, 0.4), (-S * 0.94, 0.26)]),
                ("capsule", (-S + 0.02, 0.19), (S - 0.02, 0.19), 0.04, 0.04)]

    def draw_lower_body() -> None:
        kind = a["lower_type"]
        if kind == "skirt":
            pts = ([(-0.06, 0.43), (0.055, 0.43), (0.1, 0.71), (-0.11, 0.71)] if side else
                   [(-W, 0.43), (W, 0.43), (Hh * 1.45, 0.71), (-Hh * 1.45, 0.71)])
            cv.fill([("poly", pts)], lower)
        else:
            pts = ([(-0.066, 0.46), (0.06, 0.46), (0.066, 0.56), (-0.07, 0.57)] if side else
                   [(-Hh, 0.46), (Hh, 0.46), (Hh * 1.02, 0.56), (0, 0.6), (-Hh * 1.02, 0.56)])
            cv.fill([("poly", pts)], lower)

    def draw_bag_behind() -> None:
        if a["bag_type"] == "backpack" and not back and not side:
            cv.fill([("poly", [(-S * 1.02, 0.2), (S * 1.02, 0.2), (S * 1.0, 0.45), (-S * 1.0, 0.45)])],
                    shade(pal["bag"], 0.8))

    def draw_bag_front() -> None:
        bag, kind = pal.get("bag"), a["bag_type"]
        if kind == "backpack":
            if back:
                cv.fill([("poly", [(-S * 0.78, 0.2), (S * 0.78, 0.2), (S * 0.82, 0.46), (-S * 0.82, 0.46)])], bag)
                cv.fill([("poly", [(-S * 0.6, 0.34), (S * 0.6, 0.34), (S * 0.62, 0.44), (-S * 0.62, 0.44)])],
                        shade(bag, 0.75))
            elif side:
                cv.fill([("poly", [(-0.06, 0.19), (-0.15, 0.21), (-0.155, 0.45), (-0.06, 0.46)])], bag)
                cv.fill([("poly", [(-0.15, 0.33), (-0.175, 0.34), (-0.17, 0.44), (-0.152, 0.44)])],
                        shade(bag, 0.75))
                cv.fill([("line", [(-0.03, 0.17), (0.045, 0.2), (0.05, 0.34)], 0.016)], shade(bag, 0.85))
            else:
                for sx in (-1, 1):
                    cv.fill([("line", [(sx * S * 0.55, 0.17), (sx * S * 0.62, 0.36)], 0.02)], bag)
        elif kind == "shoulder bag":
            if side:
                cv.fill([("line", [(0.0, 0.17), (0.04, 0.3), (0.0, 0.46)], 0.012)], shade(bag, 0.85))
                cv.fill([("poly", [(-0.07, 0.44), (0.03, 0.44), (0.03, 0.55), (-0.07, 0.55)])], bag)
            else:
                sx = 1 if back else -1
                cv.fill([("line", [(-sx * S * 0.6, 0.17), (sx * Hh * 1.15, 0.46)], 0.012)], shade(bag, 0.85))
                x = sx * Hh * 1.15
                cv.fill([("poly", [(x - 0.045, 0.45), (x + 0.045, 0.45), (x + 0.045, 0.55), (x - 0.045, 0.55)])], bag)
                cv.fill([("poly", [(x - 0.045, 0.45), (x + 0.045, 0.45), (x + 0.045, 0.49), (x - 0.045, 0.49)])],
                        shade(bag, 0.78))

    def draw_in_hand(item: str, hand: tuple[float, float], f: float = 1.0) -> None:
        x, y = hand
        if item == "handbag":
            bag = shade(pal["bag"], f)
            cv.fill([("line", [(x - 0.02, y + 0.04), (x, y), (x + 0.02, y + 0.04)], 0.007)], shade(bag, 0.7))
            cv.fill([("poly", [(x - 0.035, y + 0.035), (x + 0.035, y + 0.035), (x + 0.045, y + 0.11),
                               (x - 0.045, y + 0.11)])], bag)
        elif item == "umbrella":
            colour = shade(pal["umbrella"], f)
            cv.fill([("line", [(x - 0.012, y - 0.02), (x, y - 0.03), (x, y + 0.02)], 0.009)], (60, 40, 30))
            cv.fill([("poly", [(x - 0.006, y + 0.02), (x + 0.006, y + 0.02), (x + 0.018, y + 0.2),
                               (x + 0.004, y + 0.38), (x - 0.01, y + 0.2)])], colour)
            cv.fill([("line", [(x + 0.004, y + 0.38), (x + 0.005, min(0.975, y + 0.43))], 0.005)], (90, 90, 90))
        elif item == "phone":
            cv.fill([("poly", [(x - 0.013, y - 0.02), (x + 0.013, y - 0.02), (x + 0.013, y + 0.02),
                               (x - 0.013, y + 0.02)])], (20, 20, 24))
        elif item == "bottle":
            cv.fill([("poly", [(x - 0.011, y - 0.01), (x + 0.011, y - 0.01), (x + 0.011, y + 0.06),
                               (x - 0.011, y + 0.06)])], (150, 198, 228))
            cv.fill([("poly", [(x - 0.007, y - 0.02), (x + 0.007, y - 0.02), (x + 0.007, y - 0.01),
                               (x - 0.007, y - 0.01)])], (240, 240, 240))

    def draw_head() -> None:
        style = a["hair_style"]
        hx = 0.012 if side else 0.0
        if style == "bun":
            cv.fill([("ellipse", -0.045 if side else 0.0, 0.045 if side else 0.0, 0.026, 0.024)], hair)
        cv.fill([("ellipse", hx, 0.078, 0.046, 0.06)], skin)  # head
        if back:
            cv.fill([("ellipse", 0, 0.07, 0.05, 0.063)], hair)
        elif side:
            cv.fill([("ellipse", -0.004, 0.068, 0.05, 0.058)], hair)
            cv.fill([("ellipse", 0.018, 0.09, 0.04, 0.048), ("ellipse", 0.03, 0.074, 0.026, 0.03)], skin)
            cv.fill([("poly", [(0.052, 0.07), (0.066, 0.094), (0.054, 0.097)])], skin)  # nose
            cv.fill([("ellipse", 0.04, 0.079, 0.005, 0.005)], dark)
            cv.fill([("ellipse", 0.0, 0.088, 0.01, 0.014)], shade(skin, 0.88))  # ear
        else:
            cv.fill([("ellipse", 0, 0.066, 0.051, 0.059)], hair)
            cv.fill([("ellipse", 0, 0.088, 0.042, 0.05)], skin)
            for ex in (-0.017, 0.017):
                cv.fill([("ellipse", ex, 0.082, 0.0055, 0.005)], dark)
            cv.fill([("line", [(-0.011, 0.113), (0.011, 0.113)], 0.004)], shade(skin, 0.7))
            if a["glasses"]:
                for ex in (-0.018, 0.018):
                    (x0, y0), (x1, y1) = cv.p(ex - 0.016, 0.073), cv.p(ex + 0.016, 0.092)
                    cv.draw.rectangle([x0, y0, x1, y1], outline=dark, width=cv.w(0.0035))
                cv.fill([("line", [(-0.002, 0.08), (0.002, 0.08)], 0.004)], dark)
        hat, hat_colour = a["headwear"], pal.get("headwear")
        if hat == "cap":
            cv.fill([("chord", 0, 0.052, 0.053, 0.047, 180, 360)], hat_colour)
            if side:
                cv.fill([("poly", [(0.02, 0.046), (0.1, 0.05), (0.096, 0.059), (0.02, 0.058)])], shade(hat_colour, 0.8))
            elif not back:
                cv.fill([("ellipse", 0, 0.052, 0.052, 0.012)], shade(hat_colour, 0.8))
        elif hat == "hat":
            cv.fill([("ellipse", 0, 0.045, 0.088 if not side else 0.09, 0.018 if not side else 0.011)], hat_colour)
            cv.fill([("chord", 0, 0.02, 0.048, 0.045, 180, 360), ("poly", [(-0.048, 0.02), (0.048, 0.02),
                                                                          (0.048, 0.042), (-0.048, 0.042)])],
                    hat_colour)
            cv.fill([("poly", [(-0.048, 0.03), (0.048, 0.03), (0.048, 0.04), (-0.048, 0.04)])], shade(hat_colour, 0.6))

    def draw_hair_over() -> None:
        style = a["hair_style"]
        end = {"shoulder-length": 0.24, "long": 0.34, "ponytail": 0.26}.get(style)
        if end is None:
            return
        if back:
            if style == "ponytail":
                cv.fill([("capsule", (0, 0.09), (0, end), 0.032, 0.018)], hair)
            else:
                cv.fill([("poly", [(-0.05, 0.07), (0.05, 0.07), (0.056, end - 0.02), (0, end), (-0.056, end - 0.02)])],
                        hair)
        elif side:
            if style == "ponytail":
                cv.fill([("capsule", (-0.045, 0.07), (-0.065, end - 0.04), 0.03, 0.016)], hair)
            else:
                cv.fill([("capsule", (-0.028, 0.07), (-0.035, end), 0.05, 0.03)], hair)
        elif style == "long":
            for sx in (-1, 1):
                cv.fill([("capsule", (sx * 0.046, 0.08), (sx * 0.056, end), 0.024, 0.018)], hair)

    # back to front
    far = 0.8 if side else 1.0
    draw_bag_behind()
    if not back and not side and a["hair_style"] in ("shoulder-length", "long"):
        cv.fill([("poly", [(-0.055, 0.06), (0.055, 0.06), (0.06, 0.23), (-0.06, 0.23)])], hair)
    if side:
        draw_arm(arms[0], far)
        if a["bag_type"] == "handbag" and a["carry"] != "none":
            draw_in_hand("handbag", arms[0][2], far)
    draw_leg(legs[0], 0.85 if side else 1.0)
    draw_leg(legs[1], 1.0)
    draw_lower_body()
    cv.fill([("capsule", (0.008 if side else 0, 0.12), (0, 0.19), 0.045, 0.05)], shade(skin, 0.92))  # neck
    cv.paint(torso_specs(), upper, pattern, colour2)
    kind = a["upper_type"]
    trim = shade(upper, 0.72) if sum(upper) > 120 else shade(upper, 1.8)
    if not side and not back:
        if kind in ("jacket", "coat"):
            cv.fill([("line", [(0, 0.17), (0, hem)], 0.008)], trim)
        if kind in ("shirt", "coat"):
            cv.fill([("poly", [(-0.035, 0.165), (0, 0.2), (-0.01, 0.22), (-0.04, 0.19)]),
                     ("poly", [(0.035, 0.165), (0, 0.2), (0.01, 0.22), (0.04, 0.19)])], trim)
        if kind == "t-shirt":
            cv.fill([("chord", 0, 0.165, 0.03, 0.02, 0, 180)], shade(skin, 0.92))
        if pattern == "logo" and colour2 is not None:
            cv.fill([("ellipse", 0.0, 0.29, 0.035, 0.03)], colour2)
            cv.fill([("ellipse", 0.0, 0.29, 0.016, 0.014)], upper)
    if kind == "sweater":
        cv.fill([("line", [(-W * 1.02, 0.505), (W * 1.02, 0.505)] if not side else [(-0.055, 0.505), (0.06, 0.505)],
                  0.02)], shade(upper, 0.8))
    if side:
        draw_bag_front()
        draw_hair_over()
        draw_arm(arms[1], 1.0)
    else:
        draw_arm(arms[0], 1.0)
        draw_arm(arms[1], 1.0)
        draw_bag_front()
    draw_head()
    if not side:
        draw_hair_over()
    items = [a["carry"]] if a["carry"] != "none" and not (back and a["carry"] == "phone") else []
    if a["bag_type"] == "handbag" and not (side and items):
        items.append("handbag")
    for item, arm in zip(items, (arms[carry_arm], arms[1 - carry_arm])):
        draw_in_hand(item, (arm[2][0], arm[2][1] + 0.012))


def render_pedestrian(attributes: dict[str, Any], view: str, size: tuple[int, int], rng: np.random.Generator,
                      palette: dict[str, RGB]) -> tuple[Image.Image, dict[str, Any]]:
    """One image of a person (``view`` front, back or side) at ``size`` (H, W); returns it and scene facts."""
    height, width = size
    img = Image.new("RGB", (width, height))
    _background(img, rng)
    hp = min(height, 2.9 * width) * rng.uniform(0.8, 0.93)
    top = height * (1 - rng.uniform(0.005, 0.06)) - 0.995 * hp  # feet on the ground, below the horizon
    cx = width / 2 + rng.uniform(-0.07, 0.07) * width
    shadow = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(shadow).ellipse([cx - 0.14 * hp, top + 0.955 * hp, cx + 0.14 * hp, top + 0.995 * hp],
                                   fill=(0, 0, 0, 70))
    img.paste(shadow, (0, 0), shadow)
    _figure(_Canvas(img, cx, top, hp), attributes, view, rng, palette)
    facing = None
    if view == "side":
        facing = "right" if rng.random() < 0.5 else "left"
        if facing == "left":
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    occluded = None
    if rng.random() < 0.25:  # a car, a pole or a passer-by in front of the person
        occluded = ("bottom", "left", "right")[int(rng.integers(3))]
        draw = ImageDraw.Draw(img)
        colour = tuple(int(v) for v in rng.integers(20, 236, 3))
        if occluded == "bottom":
            y0 = height * rng.uniform(0.72, 0.85)
            draw.rounded_rectangle([-10, y0, width + 10, height + 10], radius=0.1 * width, fill=colour)
        else:
            w = width * rng.uniform(0.15, 0.3)
            x0 = -10 if occluded == "left" else width - w
            draw.rectangle([x0, height * rng.uniform(0.0, 0.5), x0 + w + 10, height + 10], fill=colour)

    blur = rng.uniform(0, 1.1) * height / 384
    if blur > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(img, dtype=np.float32)
    mean = pixels.mean()
    contrast, brightness = rng.uniform(0.7, 1.2), rng.uniform(0.72, 1.25)
    cast = 1 + rng.uniform(-0.06, 0.06, 3)
    vertical = rng.random() < 0.5  # uneven light across the frame
    ramp = np.linspace(-1, 1, height if vertical else width, dtype=np.float32) * rng.uniform(-0.15, 0.15)
    gain = 1 + (ramp[:, None, None] if vertical else ramp[None, :, None])
    pixels = ((pixels - mean) * contrast + mean) * brightness * cast * gain
    pixels += rng.normal(0, rng.uniform(0, 5), pixels.shape).astype(np.float32)
    out = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    return out, {"facing": facing, "occluded": occluded}
