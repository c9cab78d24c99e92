"""Drawing of SynthPEDES pedestrians with PIL: body, garments, accessories, background and camera effects.

A figure is laid out in person units (height 1, x = 0 on the body axis, y = 0 at the top of the head) and
mapped onto the canvas; a side view is drawn facing right and mirrored for "left".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Canvas pixels of a point in person units."""
        return (self.cx + x * self.hp, self.top + y * self.hp)

    def pixels(self, length: float) -> int:
        """A length in person units as a whole number of pixels (at least 1)."""
        return max(1, round(length * self.hp))

    def shape(self, draw: ImageDraw.ImageDraw, spec: tuple, fill: Any) -> None:
        kind = spec[0]
        if kind == "poly":
            draw.polygon([self.point(*q) for q in spec[1]], fill=fill)
        elif kind == "ellipse":
            _, x, y, rx, ry = spec
            (left, top), (right, bottom) = self.point(x - rx, y - ry), self.point(x + rx, y + ry)
            draw.ellipse([left, top, max(left, right), max(top, bottom)], fill=fill)
        elif kind == "capsule":  # a tapered limb segment with round ends
            _, (x0, y0), (x1, y1), w0, w1 = spec
            length = math.hypot(x1 - x0, y1 - y0) or 1e-6
            nx, ny = -(y1 - y0) / length, (x1 - x0) / length  # the unit normal
            corners = [(x0 + nx * w0 / 2, y0 + ny * w0 / 2), (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
                       (x1 - nx * w1 / 2, y1 - ny * w1 / 2), (x0 - nx * w0 / 2, y0 - ny * w0 / 2)]
            draw.polygon([self.point(*q) for q in corners], fill=fill)
            self.shape(draw, ("ellipse", x0, y0, w0 / 2, w0 / 2), fill)
            self.shape(draw, ("ellipse", x1, y1, w1 / 2, w1 / 2), fill)
        elif kind == "line":
            _, points, width = spec
            draw.line([self.point(*q) for q in points], fill=fill, width=self.pixels(width))
        elif kind == "chord":
            _, x, y, rx, ry, start, end = spec
            (left, top), (right, bottom) = self.point(x - rx, y - ry), self.point(x + rx, y + ry)
            draw.chord([left, top, max(left, right), max(top, bottom)], start, end, fill=fill)

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


# ------------------------------------------------------------------------------------------------ the figure
Point = tuple[float, float]
Limb = list[Point]  # an arm (shoulder, elbow, hand) or a leg (hip, knee, ankle)
Shape = tuple  # a _Canvas.shape spec

_BUILD_WIDTH = {"slim": 0.88, "average": 1.0, "heavy": 1.2}
_HEM = {"t-shirt": 0.53, "shirt": 0.52, "jacket": 0.51, "sweater": 0.52, "coat": 0.7}  # where the top ends
_HAIR_END = {"shoulder-length": 0.24, "long": 0.34, "ponytail": 0.26}  # how far hair falls
_DARK = (28, 28, 30)  # eyes, glasses


@dataclass(frozen=True)
class _Person:
    """What the drawing reads: attributes, view, this identity's colours, and body proportions in person units."""

    attributes: dict[str, Any]
    view: str
    palette: dict[str, RGB]
    build: float  # width factor of the build
    shoulder: float  # half-widths at the shoulders, the waist and the hips
    waist: float
    hip: float
    hem: float

    @property
    def side(self) -> bool:
        return self.view == "side"

    @property
    def back(self) -> bool:
        return self.view == "back"

    @property
    def front(self) -> bool:
        return not self.side and not self.back

    @property
    def pattern(self) -> str:
        return self.attributes["upper_pattern"]


def _person(attributes: dict[str, Any], view: str, palette: dict[str, RGB]) -> _Person:
    female = attributes["gender"] == "female"
    build = _BUILD_WIDTH[attributes["build"]]
    shoulder = (0.092 if female else 0.106) * build
    waist = shoulder * (0.74 if female else 0.8) * (1.1 if attributes["build"] == "heavy" else 1.0)
    hip = shoulder * (0.95 if female else 0.84)
    return _Person(attributes, view, palette, build, shoulder, waist, hip, _HEM[attributes["upper_type"]])


@dataclass
class _Pose:
    """Joint positions: ``[0]`` is the far (side view) or left limb, ``[1]`` the near or right one."""

    arms: list[Limb]
    legs: list[Limb]
    carry_arm: int  # the hand that holds the carried item


def _joint_angles(person: _Person, rng: np.random.Generator) -> tuple[list[Point], list[float], list[float],
                                                                      list[Point], list[float]]:
    """Shoulders, arm angles, elbow bends, hips and thigh angles: walking in a side view, standing otherwise."""
    swing = rng.uniform(-1, 1)
    if person.side:
        shoulders = [(-0.005, 0.19), (0.005, 0.19)]
        arm_angles = [-swing * 26, swing * 26]
        bends = [rng.uniform(8, 30), rng.uniform(8, 30)]
        hips = [(0.0, 0.5), (0.0, 0.5)]
        thighs = [swing * 22, -swing * 22]
    else:
        shoulders = [(-person.shoulder + 0.02, 0.19), (person.shoulder - 0.02, 0.19)]
        arm_angles = [-rng.uniform(4, 13), rng.uniform(4, 13)]
        bends = [rng.uniform(-4, 6), -rng.uniform(-4, 6)]  # positive: the forearm turns toward the body
        hips = [(-person.hip * 0.48, 0.5), (person.hip * 0.48, 0.5)]
        spread = rng.uniform(1, 4)
        thighs = [-spread, spread]
    return shoulders, arm_angles, bends, hips, thighs


def _raise_for_phone(arm: Limb, person: _Person, carry_arm: int) -> Limb:
    """The forearm raised to look at the phone."""
    shoulder = arm[0]
    elbow = _polar(shoulder, 0.16, 12 if person.side else (8 if carry_arm else -8))
    return [shoulder, elbow, (elbow[0] + (0.07 if person.side else (-0.05 if carry_arm else 0.05)), elbow[1] - 0.06)]


def _pose(person: _Person, rng: np.random.Generator) -> _Pose:
    shoulders, arm_angles, bends, hips, thighs = _joint_angles(person, rng)
    arms = []
    for shoulder, angle, bend in zip(shoulders, arm_angles, bends):
        elbow = _polar(shoulder, 0.165, angle)
        arms.append([shoulder, elbow, _polar(elbow, 0.15, angle + bend)])
    carry_arm = 1 if person.side else (0 if person.back else 1)
    if person.attributes["carry"] == "phone":
        arms[carry_arm] = _raise_for_phone(arms[carry_arm], person, carry_arm)
    legs = []
    for hip, thigh in zip(hips, thighs):
        knee = _polar(hip, 0.24, thigh)
        shin = thigh - (rng.uniform(8, 24) if person.side and thigh < 0 else 0)  # the back leg's knee bends
        legs.append([hip, knee, _polar(knee, 0.22, shin)])
    if person.side:  # the lower foot touches the ground
        lift = 0.955 - max(legs[0][2][1], legs[1][2][1])
        legs = [[(x, y + lift) for x, y in leg] for leg in legs]
    return _Pose(arms, legs, carry_arm)


def _leg_shapes(leg: Limb, build: float, upto: float = 1.0) -> list[Shape]:
    """Thigh and shin; with ``upto`` < 1, only that fraction of the thigh (shorts)."""
    hip, knee, ankle = leg
    thickness = 0.085 * build
    if upto < 1.0:
        return [("capsule", hip, (hip[0] + (knee[0] - hip[0]) * upto, hip[1] + (knee[1] - hip[1]) * upto),
                 thickness * 1.05, thickness * 1.0)]
    return [("capsule", hip, knee, thickness, thickness * 0.8),
            ("capsule", knee, ankle, thickness * 0.75, thickness * 0.58)]


def _arm_shapes(arm: Limb, build: float, long_sleeve: bool) -> tuple[list[Shape], list[Shape]]:
    """(sleeve shapes, bare skin shapes) of an arm."""
    shoulder, elbow, hand = arm
    thickness = 0.05 * build
    if long_sleeve:
        return [("capsule", shoulder, elbow, thickness, thickness * 0.9),
                ("capsule", elbow, hand, thickness * 0.88, thickness * 0.75)], []
    mid = (shoulder[0] + (elbow[0] - shoulder[0]) * 0.5, shoulder[1] + (elbow[1] - shoulder[1]) * 0.5)
    return [("capsule", shoulder, mid, thickness * 1.15, thickness * 1.05)], [
        ("capsule", shoulder, elbow, thickness * 0.8, thickness * 0.72),
        ("capsule", elbow, hand, thickness * 0.7, thickness * 0.6)]


def _draw_leg(cv: _Canvas, person: _Person, leg: Limb, light: float) -> None:
    """A leg in its trousers, jeans, shorts or skirt, and its shoe; ``light`` darkens the far one."""
    kind, palette = person.attributes["lower_type"], person.palette
    cloth, skin = shade(palette["lower"], light), shade(palette["skin"], light)
    if kind in ("shorts", "skirt"):
        cv.fill(_leg_shapes(leg, person.build), skin)
        if kind == "shorts":
            cv.fill(_leg_shapes(leg, person.build, 0.6), cloth)
    else:
        cv.fill(_leg_shapes(leg, person.build), cloth)
        if kind == "jeans":  # the outer seam
            hip, knee, ankle = leg
            cv.fill([("line", [(hip[0] + 0.02, hip[1] + 0.02), (knee[0] + 0.018, knee[1]),
                               (ankle[0] + 0.015, ankle[1] - 0.01)], 0.006)], shade(cloth, 1.35))
    ankle = leg[2]
    if person.side:
        cv.fill([("ellipse", ankle[0] + 0.022, ankle[1] + 0.018, 0.046, 0.021)], shade(palette["shoes"], light))
    else:
        cv.fill([("ellipse", ankle[0], ankle[1] + 0.018, 0.032, 0.022)], shade(palette["shoes"], light))


def _draw_arm(cv: _Canvas, person: _Person, arm: Limb, light: float) -> None:
    """An arm in its sleeve (patterned like the top), and its hand."""
    palette, second = person.palette, person.palette.get("pattern")
    sleeve, bare = _arm_shapes(arm, person.build, person.attributes["upper_type"] != "t-shirt")
    cv.fill(bare, shade(palette["skin"], light))
    cv.paint(sleeve, shade(palette["upper"], light * 0.92), person.pattern, second and shade(second, light * 0.92))
    hand = arm[2]
    cv.fill([("ellipse", hand[0], hand[1] + 0.01, 0.021, 0.024)], shade(palette["skin"], light))


def _torso_shapes(person: _Person) -> list[Shape]:
    """The upper garment's body, from the shoulders to the hem."""
    kind, hem = person.attributes["upper_type"], person.hem
    if person.side:
        chest = 0.075 if person.attributes["gender"] == "female" else 0.066
        belly = 0.02 if person.attributes["build"] == "heavy" else 0.0
        flare = 0.03 if kind == "coat" else 0.0
        return [("poly", [(-0.06, 0.17), (0.045, 0.17), (chest, 0.26), (0.058 + belly, 0.4),
                          (0.062 + flare, hem), (-0.068 - flare, hem), (-0.055, 0.4), (-0.068, 0.25)])]
    shoulder, waist = person.shoulder, person.waist
    flare = person.hip * (1.25 if kind == "coat" else 1.02)
    return [("poly", [(-shoulder, 0.18), (-0.03, 0.165), (0.03, 0.165), (shoulder, 0.18), (shoulder * 0.94, 0.26),
                      (waist, 0.4), (flare, hem), (-flare, hem), (-waist, 0.4), (-shoulder * 0.94, 0.26)]),
            ("capsule", (-shoulder + 0.02, 0.19), (shoulder - 0.02, 0.19), 0.04, 0.04)]


def _draw_lower_garment(cv: _Canvas, person: _Person) -> None:
    """The skirt, or the seat of the trousers, shorts or jeans."""
    waist, hip = person.waist, person.hip
    if person.attributes["lower_type"] == "skirt":
        points = ([(-0.06, 0.43), (0.055, 0.43), (0.1, 0.71), (-0.11, 0.71)] if person.side else
                  [(-waist, 0.43), (waist, 0.43), (hip * 1.45, 0.71), (-hip * 1.45, 0.71)])
    else:
        points = ([(-0.066, 0.46), (0.06, 0.46), (0.066, 0.56), (-0.07, 0.57)] if person.side else
                  [(-hip, 0.46), (hip, 0.46), (hip * 1.02, 0.56), (0, 0.6), (-hip * 1.02, 0.56)])
    cv.fill([("poly", points)], person.palette["lower"])


def _draw_garment_details(cv: _Canvas, person: _Person) -> None:
    """Front opening, collar, neckline and logo seen from the front; a sweater's hem band from every side."""
    kind, upper, second = person.attributes["upper_type"], person.palette["upper"], person.palette.get("pattern")
    trim = shade(upper, 0.72) if sum(upper) > 120 else shade(upper, 1.8)
    if person.front:
        if kind in ("jacket", "coat"):
            cv.fill([("line", [(0, 0.17), (0, person.hem)], 0.008)], trim)
        if kind in ("shirt", "coat"):
            cv.fill([("poly", [(-0.035, 0.165), (0, 0.2), (-0.01, 0.22), (-0.04, 0.19)]),
                     ("poly", [(0.035, 0.165), (0, 0.2), (0.01, 0.22), (0.04, 0.19)])], trim)
        if kind == "t-shirt":
            cv.fill([("chord", 0, 0.165, 0.03, 0.02, 0, 180)], shade(person.palette["skin"], 0.92))
        if person.pattern == "logo" and second is not None:
            cv.fill([("ellipse", 0.0, 0.29, 0.035, 0.03)], second)
            cv.fill([("ellipse", 0.0, 0.29, 0.016, 0.014)], upper)
    if kind == "sweater":
        band = [(-0.055, 0.505), (0.06, 0.505)] if person.side else [(-person.waist * 1.02, 0.505),
                                                                      (person.waist * 1.02, 0.505)]
        cv.fill([("line", band, 0.02)], shade(upper, 0.8))


def _draw_backpack_behind(cv: _Canvas, person: _Person) -> None:
    """A backpack seen from the front shows around the shoulders."""
    if person.attributes["bag_type"] == "backpack" and person.front:
        shoulder = person.shoulder
        cv.fill([("poly", [(-shoulder * 1.02, 0.2), (shoulder * 1.02, 0.2), (shoulder * 1.0, 0.45),
                           (-shoulder * 1.0, 0.45)])], shade(person.palette["bag"], 0.8))


def _draw_backpack(cv: _Canvas, person: _Person) -> None:
    bag, shoulder = person.palette["bag"], person.shoulder
    if person.back:
        cv.fill([("poly", [(-shoulder * 0.78, 0.2), (shoulder * 0.78, 0.2), (shoulder * 0.82, 0.46),
                           (-shoulder * 0.82, 0.46)])], bag)
        cv.fill([("poly", [(-shoulder * 0.6, 0.34), (shoulder * 0.6, 0.34), (shoulder * 0.62, 0.44),
                           (-shoulder * 0.62, 0.44)])], shade(bag, 0.75))  # front pocket
    elif person.side:
        cv.fill([("poly", [(-0.06, 0.19), (-0.15, 0.21), (-0.155, 0.45), (-0.06, 0.46)])], bag)
        cv.fill([("poly", [(-0.15, 0.33), (-0.175, 0.34), (-0.17, 0.44), (-0.152, 0.44)])], shade(bag, 0.75))
        cv.fill([("line", [(-0.03, 0.17), (0.045, 0.2), (0.05, 0.34)], 0.016)], shade(bag, 0.85))
    else:  # the straps
        for sign in (-1, 1):
            cv.fill([("line", [(sign * shoulder * 0.55, 0.17), (sign * shoulder * 0.62, 0.36)], 0.02)], bag)


def _draw_shoulder_bag(cv: _Canvas, person: _Person) -> None:
    bag = person.palette["bag"]
    if person.side:
        cv.fill([("line", [(0.0, 0.17), (0.04, 0.3), (0.0, 0.46)], 0.012)], shade(bag, 0.85))
        cv.fill([("poly", [(-0.07, 0.44), (0.03, 0.44), (0.03, 0.55), (-0.07, 0.55)])], bag)
        return
    sign = 1 if person.back else -1  # the strap crosses the body toward the bag
    cv.fill([("line", [(-sign * person.shoulder * 0.6, 0.17), (sign * person.hip * 1.15, 0.46)], 0.012)],
            shade(bag, 0.85))
    x = sign * person.hip * 1.15
    cv.fill([("poly", [(x - 0.045, 0.45), (x + 0.045, 0.45), (x + 0.045, 0.55), (x - 0.045, 0.55)])], bag)
    cv.fill([("poly", [(x - 0.045, 0.45), (x + 0.045, 0.45), (x + 0.045, 0.49), (x - 0.045, 0.49)])],
            shade(bag, 0.78))  # the flap


def _draw_bag(cv: _Canvas, person: _Person) -> None:
    """A backpack or shoulder bag over the clothes (a handbag is held: `_draw_held_item`)."""
    kind = person.attributes["bag_type"]
    if kind == "backpack":
        _draw_backpack(cv, person)
    elif kind == "shoulder bag":
        _draw_shoulder_bag(cv, person)


def _draw_held_item(cv: _Canvas, person: _Person, item: str, hand: Point, light: float = 1.0) -> None:
    """A handbag, umbrella, phone or bottle in the hand at ``hand``."""
    x, y = hand
    if item == "handbag":
        bag = shade(person.palette["bag"], light)
        cv.fill([("line", [(x - 0.02, y + 0.04), (x, y), (x + 0.02, y + 0.04)], 0.007)], shade(bag, 0.7))
        cv.fill([("poly", [(x - 0.035, y + 0.035), (x + 0.035, y + 0.035), (x + 0.045, y + 0.11),
                           (x - 0.045, y + 0.11)])], bag)
    elif item == "umbrella":  # folded, hanging from the hand
        colour = shade(person.palette["umbrella"], light)
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
                           (x - 0.007, y - 0.01)])], (240, 240, 240))  # the cap


def _draw_side_face(cv: _Canvas, skin: RGB, hair: RGB) -> None:
    cv.fill([("ellipse", -0.004, 0.068, 0.05, 0.058)], hair)
    cv.fill([("ellipse", 0.018, 0.09, 0.04, 0.048), ("ellipse", 0.03, 0.074, 0.026, 0.03)], skin)
    cv.fill([("poly", [(0.052, 0.07), (0.066, 0.094), (0.054, 0.097)])], skin)  # nose
    cv.fill([("ellipse", 0.04, 0.079, 0.005, 0.005)], _DARK)  # eye
    cv.fill([("ellipse", 0.0, 0.088, 0.01, 0.014)], shade(skin, 0.88))  # ear


def _draw_front_face(cv: _Canvas, skin: RGB, hair: RGB, glasses: bool) -> None:
    cv.fill([("ellipse", 0, 0.066, 0.051, 0.059)], hair)
    cv.fill([("ellipse", 0, 0.088, 0.042, 0.05)], skin)
    for eye_x in (-0.017, 0.017):
        cv.fill([("ellipse", eye_x, 0.082, 0.0055, 0.005)], _DARK)
    cv.fill([("line", [(-0.011, 0.113), (0.011, 0.113)], 0.004)], shade(skin, 0.7))  # mouth
    if glasses:
        for eye_x in (-0.018, 0.018):
            (left, top), (right, bottom) = cv.point(eye_x - 0.016, 0.073), cv.point(eye_x + 0.016, 0.092)
            cv.draw.rectangle([left, top, right, bottom], outline=_DARK, width=cv.pixels(0.0035))
        cv.fill([("line", [(-0.002, 0.08), (0.002, 0.08)], 0.004)], _DARK)  # the bridge


def _draw_headwear(cv: _Canvas, person: _Person) -> None:
    hat, colour = person.attributes["headwear"], person.palette.get("headwear")
    if hat == "cap":
        cv.fill([("chord", 0, 0.052, 0.053, 0.047, 180, 360)], colour)
        if person.side:  # the peak
            cv.fill([("poly", [(0.02, 0.046), (0.1, 0.05), (0.096, 0.059), (0.02, 0.058)])], shade(colour, 0.8))
        elif not person.back:
            cv.fill([("ellipse", 0, 0.052, 0.052, 0.012)], shade(colour, 0.8))
    elif hat == "hat":
        cv.fill([("ellipse", 0, 0.045, 0.088 if not person.side else 0.09, 0.018 if not person.side else 0.011)],
                colour)  # the brim
        cv.fill([("chord", 0, 0.02, 0.048, 0.045, 180, 360),
                 ("poly", [(-0.048, 0.02), (0.048, 0.02), (0.048, 0.042), (-0.048, 0.042)])], colour)
        cv.fill([("poly", [(-0.048, 0.03), (0.048, 0.03), (0.048, 0.04), (-0.048, 0.04)])], shade(colour, 0.6))


def _draw_head(cv: _Canvas, person: _Person) -> None:
    """Bun, head, hair on top, face and headwear."""
    skin, hair = person.palette["skin"], person.palette["hair"]
    if person.attributes["hair_style"] == "bun":
        cv.fill([("ellipse", -0.045 if person.side else 0.0, 0.045 if person.side else 0.0, 0.026, 0.024)], hair)
    cv.fill([("ellipse", 0.012 if person.side else 0.0, 0.078, 0.046, 0.06)], skin)
    if person.back:
        cv.fill([("ellipse", 0, 0.07, 0.05, 0.063)], hair)
    elif person.side:
        _draw_side_face(cv, skin, hair)
    else:
        _draw_front_face(cv, skin, hair, person.attributes["glasses"])
    _draw_headwear(cv, person)


def _draw_hair_behind(cv: _Canvas, person: _Person) -> None:
    """Shoulder-length and long hair seen from the front falls behind the neck."""
    if person.front and person.attributes["hair_style"] in ("shoulder-length", "long"):
        cv.fill([("poly", [(-0.055, 0.06), (0.055, 0.06), (0.06, 0.23), (-0.06, 0.23)])], person.palette["hair"])


def _draw_hair_over(cv: _Canvas, person: _Person) -> None:
    """Hair that falls over the back or the shoulders: long, shoulder-length or a ponytail."""
    style, hair = person.attributes["hair_style"], person.palette["hair"]
    end = _HAIR_END.get(style)
    if end is None:
        return
    if person.back:
        if style == "ponytail":
            cv.fill([("capsule", (0, 0.09), (0, end), 0.032, 0.018)], hair)
        else:
            cv.fill([("poly", [(-0.05, 0.07), (0.05, 0.07), (0.056, end - 0.02), (0, end), (-0.056, end - 0.02)])],
                    hair)
    elif person.side:
        if style == "ponytail":
            cv.fill([("capsule", (-0.045, 0.07), (-0.065, end - 0.04), 0.03, 0.016)], hair)
        else:
            cv.fill([("capsule", (-0.028, 0.07), (-0.035, end), 0.05, 0.03)], hair)
    elif style == "long":
        for sign in (-1, 1):
            cv.fill([("capsule", (sign * 0.046, 0.08), (sign * 0.056, end), 0.024, 0.018)], hair)


def _held_items(person: _Person) -> list[str]:
    """What the hands hold, carry-arm first: the carried item (a phone held in front is hidden from behind), then
    a handbag (in a side view the far hand holds it, unless the near hand is busy)."""
    carry = person.attributes["carry"]
    items = [carry] if carry != "none" and not (person.back and carry == "phone") else []
    if person.attributes["bag_type"] == "handbag" and not (person.side and items):
        items.append("handbag")
    return items


def _figure(cv: _Canvas, attributes: dict[str, Any], view: str, rng: np.random.Generator,
            palette: dict[str, RGB]) -> None:
    """The person, drawn back to front."""
    person = _person(attributes, view, palette)
    pose = _pose(person, rng)
    far = 0.8 if person.side else 1.0  # the far limbs of a side view are in shadow
    _draw_backpack_behind(cv, person)
    _draw_hair_behind(cv, person)
    if person.side:
        _draw_arm(cv, person, pose.arms[0], far)
        if attributes["bag_type"] == "handbag" and attributes["carry"] != "none":
            _draw_held_item(cv, person, "handbag", pose.arms[0][2], far)
    _draw_leg(cv, person, pose.legs[0], 0.85 if person.side else 1.0)
    _draw_leg(cv, person, pose.legs[1], 1.0)
    _draw_lower_garment(cv, person)
    cv.fill([("capsule", (0.008 if person.side else 0, 0.12), (0, 0.19), 0.045, 0.05)],
            shade(palette["skin"], 0.92))  # neck
    cv.paint(_torso_shapes(person), palette["upper"], person.pattern, palette.get("pattern"))
    _draw_garment_details(cv, person)
    if person.side:
        _draw_bag(cv, person)
        _draw_hair_over(cv, person)
        _draw_arm(cv, person, pose.arms[1], 1.0)
    else:
        _draw_arm(cv, person, pose.arms[0], 1.0)
        _draw_arm(cv, person, pose.arms[1], 1.0)
        _draw_bag(cv, person)
    _draw_head(cv, person)
    if not person.side:
        _draw_hair_over(cv, person)
    for item, arm in zip(_held_items(person), (pose.arms[pose.carry_arm], pose.arms[1 - pose.carry_arm])):
        _draw_held_item(cv, person, item, (arm[2][0], arm[2][1] + 0.012))


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
