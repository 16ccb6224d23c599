"""Procedural street scenes in the Cityscapes label space, so that a CPU demo can train a real PSPNet on something
(Cityscapes itself may not be redistributed).

A pinhole camera over a ground plane gives the classes perspective, occlusion, texture and context. Palettes overlap
on purpose, and colours, lighting and shadows vary per image, so that a model has to use shape, texture and position
(the colour-only baseline in tests/test_datasets.py checks it). Only numpy and cv2; one ``numpy.random.Generator``
fixes the scene exactly.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .labels import LABEL_ID

Color = Tuple[float, float, float]
Poly = np.ndarray  # (N, 2) float pixel coordinates

ROAD, SIDEWALK, BUILDING, WALL, FENCE = (LABEL_ID[n] for n in ('road', 'sidewalk', 'building', 'wall', 'fence'))
POLE, LIGHT, SIGN, VEGETATION, TERRAIN = (
    LABEL_ID[n] for n in ('pole', 'traffic light', 'traffic sign', 'vegetation', 'terrain'))
SKY, PERSON, CAR, TRUCK, BUS = (LABEL_ID[n] for n in ('sky', 'person', 'car', 'truck', 'bus'))
EGO = LABEL_ID['ego vehicle']  # trainId 255: the ignore label shows up in the maps as it does in Cityscapes

# Palettes (RGB). They overlap across classes on purpose; see the module docstring.
FACADES: Sequence[Color] = ((140, 140, 140), (200, 185, 160), (160, 85, 65), (100, 80, 70), (225, 225, 220),
                            (80, 85, 90), (210, 190, 120), (150, 165, 180), (95, 120, 150))
ASPHALT: Sequence[Color] = ((90, 90, 95), (120, 118, 115), (70, 72, 80), (135, 135, 140))
PAVING: Sequence[Color] = ((150, 150, 150), (175, 170, 160), (170, 130, 120), (120, 120, 125), (200, 195, 185))
GREENS: Sequence[Color] = ((60, 100, 40), (35, 65, 35), (120, 140, 50), (150, 115, 55), (80, 110, 70))
GRASS: Sequence[Color] = ((110, 135, 70), (150, 140, 90), (120, 100, 70), (85, 120, 60))
VEHICLES: Sequence[Color] = ((230, 230, 230), (30, 30, 35), (160, 160, 165), (170, 30, 30), (40, 60, 130),
                             (90, 90, 95), (200, 180, 140), (40, 90, 60), (210, 190, 50))
CLOTHES: Sequence[Color] = ((30, 30, 35), (50, 60, 90), (180, 40, 40), (220, 220, 215), (120, 100, 80),
                            (60, 110, 160), (140, 140, 140), (200, 160, 60))
SKIN: Sequence[Color] = ((230, 190, 160), (190, 140, 100), (120, 80, 55))


class _Camera:
    """Pinhole camera at height ``cam_h`` metres, looking down a street along +Z; X to the right, Y up."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, height
        self.focal = 1.1 * width  # about Cityscapes' field of view
        self.horizon = height * rng.uniform(0.36, 0.48)
        self.cx = width * rng.uniform(0.4, 0.6)
        self.cam_h = 1.5

    def project(self, X: float, Z: float, Y: float = 0.0) -> Tuple[float, float]:
        Z = max(Z, 0.5)
        return self.cx + self.focal * X / Z, self.horizon + self.focal * (self.cam_h - Y) / Z

    def size(self, metres: float, Z: float) -> float:
        return self.focal * metres / max(Z, 0.5)

    def ground(self, X0: float, X1: float, Z0: float, Z1: float) -> Poly:
        return np.array([self.project(X0, Z0), self.project(X1, Z0), self.project(X1, Z1), self.project(X0, Z1)])

    def side(self, X: float, Z0: float, Z1: float, Y0: float, Y1: float) -> Poly:
        """A vertical plane along the street (a facade, a wall)."""
        return np.array([self.project(X, Z0, Y0), self.project(X, Z1, Y0), self.project(X, Z1, Y1),
                         self.project(X, Z0, Y1)])

    def front(self, X0: float, X1: float, Y0: float, Y1: float, Z: float) -> Poly:
        """A rectangle facing the camera at depth Z."""
        return np.array([self.project(X0, Z, Y0), self.project(X1, Z, Y0), self.project(X1, Z, Y1),
                         self.project(X0, Z, Y1)])


class _Canvas:
    """RGB float image plus label-id map, painted back to front; textures come from per-image noise fields."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.img = np.zeros((height, width, 3), np.float32)
        self.lab = np.full((height, width), SKY, np.uint8)
        self.fine = rng.standard_normal((height, width)).astype(np.float32)
        self.mid = self._smooth_noise(4)
        self.low = self._smooth_noise(24)

    def _smooth_noise(self, cell: int) -> np.ndarray:
        h, w = self.lab.shape
        small = self.rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
        field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        return field / (field.std() + 1e-6)

    def mask(self, polys: Sequence[Poly]) -> np.ndarray:
        m = np.zeros(self.lab.shape, np.uint8)
        pts = [np.round(np.asarray(p) * 4).astype(np.int32) for p in polys]  # 2 bits of sub-pixel precision
        cv2.fillPoly(m, pts, 1, lineType=cv2.LINE_8, shift=2)
        return m.astype(bool)

    def ellipse_mask(self, centre: Tuple[float, float], axes: Tuple[float, float], angle: float = 0.0) -> np.ndarray:
        m = np.zeros(self.lab.shape, np.uint8)
        c = (int(round(centre[0] * 4)), int(round(centre[1] * 4)))
        a = (max(1, int(round(axes[0] * 4))), max(1, int(round(axes[1] * 4))))
        cv2.ellipse(m, c, a, angle, 0, 360, 1, -1, lineType=cv2.LINE_8, shift=2)
        return m.astype(bool)

    def paint(self, mask: np.ndarray, label: int, color: Color, fine: float = 0.03, mid: float = 0.0,
              low: float = 0.0) -> None:
        """Fill ``mask`` with ``color`` modulated by the noise fields; ``label=-1`` paints detail without labels."""
        if not mask.any():
            return
        tex = 1.0 + fine * self.fine[mask] + mid * self.mid[mask] + low * self.low[mask]
        self.img[mask] = np.asarray(color, np.float32)[None, :] * tex[:, None]
        if label >= 0:
            self.lab[mask] = label

    def poly(self, polys: Sequence[Poly], label: int, color: Color, **tex: float) -> None:
        self.paint(self.mask(polys), label, color, **tex)


def _jitter(rng: np.random.Generator, color: Color, spread: float = 18.0) -> Color:
    return tuple(float(np.clip(c + rng.uniform(-spread, spread), 0, 255)) for c in color)


def _pick(rng: np.random.Generator, palette: Sequence[Color], spread: float = 18.0) -> Color:
    return _jitter(rng, palette[rng.integers(len(palette))], spread)


def _scale(color: Color, k: float) -> Color:
    return tuple(float(np.clip(c * k, 0, 255)) for c in color)


def _sky(cv: _Canvas, cam: _Camera) -> None:
    rng = cv.rng
    kind = rng.choice(['clear', 'overcast', 'dusk'], p=[0.5, 0.35, 0.15])
    top, bottom = {'clear': ((70, 120, 200), (170, 200, 230)), 'overcast': ((150, 155, 165), (205, 205, 210)),
                   'dusk': ((60, 70, 130), (230, 150, 110))}[kind]
    top, bottom = np.array(_jitter(rng, top, 25)), np.array(_jitter(rng, bottom, 25))
    h = cv.lab.shape[0]
    t = np.clip(np.arange(h, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)[:, None, None]
    cv.img[:] = top * (1 - t) + bottom * t
    clouds = np.clip(cv.low * rng.uniform(0.2, 0.6) + rng.uniform(-0.3, 0.3), 0, 1)[..., None]
    cv.img[:] = cv.img * (1 - clouds * 0.6) + np.float32(rng.uniform(200, 245)) * clouds * 0.6


def _windows(cv: _Canvas, quads: List[Poly], base: Color) -> None:
    """Windows keep the facade's label; half dark glass, some lit or reflecting."""
    if not quads:
        return
    rng = cv.rng
    glass = _jitter(rng, (40, 50, 65), 15) if rng.random() < 0.6 else _scale(base, rng.uniform(0.35, 0.6))
    lit = _jitter(rng, (200, 200, 170), 30)
    on = rng.random(len(quads)) < rng.uniform(0.0, 0.35)
    for sel, col in ((~on, glass), (on, lit)):
        chosen = [q for q, s in zip(quads, sel) if s]
        if chosen:
            cv.poly(chosen, -1, col, fine=0.05, low=0.1)


def _side_buildings(cv: _Canvas, cam: _Camera, X: float, z_end: float) -> None:
    """Facades along one side of the street, from behind the camera to the far end, with perspective windows."""
    rng = cv.rng
    z = 1.0
    while z < z_end:
        z1 = min(z + rng.uniform(8, 25), z_end)
        if z > 4 and rng.random() < 0.2:  # an open lot: the sky and what is behind show through
            z = z1
            continue
        height = rng.uniform(6, 20)
        color = _pick(rng, FACADES, 20)
        cv.poly([cam.side(X, z, z1, 0, height)], BUILDING, color, fine=0.04, mid=0.03, low=0.08)
        floor_h, pitch, win_w = rng.uniform(2.8, 3.6), rng.uniform(2.2, 3.5), rng.uniform(0.9, 1.6)
        quads = []
        for y0 in np.arange(rng.uniform(2.5, 3.5), height - 1.6, floor_h):
            for zz in np.arange(z + 0.6, z1 - win_w, pitch):
                quads.append(cam.side(X, zz, zz + win_w, y0, y0 + floor_h * 0.55))
        _windows(cv, quads, color)
        if rng.random() < 0.5:  # shop windows on the ground floor
            cv.poly([cam.side(X, z + 0.5, z1 - 0.5, 0.3, 2.3)], -1, _jitter(rng, (60, 70, 80), 25), fine=0.05,
                    low=0.15)
        z = z1


def _far_buildings(cv: _Canvas, cam: _Camera, z_end: float) -> None:
    """A row of frontal facades closing the street at depth ``z_end``."""
    rng = cv.rng
    x = -z_end * 1.5
    while x < z_end * 1.5:
        w = rng.uniform(8, 22)
        height = rng.uniform(4, 18)
        color = _pick(rng, FACADES, 20)
        cv.poly([cam.front(x, x + w, 0, height, z_end)], BUILDING, color, fine=0.04, mid=0.03, low=0.08)
        quads = [cam.front(xx, xx + 1.2, y0, y0 + 1.6, z_end) for y0 in np.arange(3.0, height - 2, 3.2)
                 for xx in np.arange(x + 1.0, x + w - 1.5, 2.6)]
        _windows(cv, quads, color)
        x += w


def _tree(cv: _Canvas, cam: _Camera, X: float, Z: float) -> None:
    rng = cv.rng
    trunk_h, r = rng.uniform(2.0, 3.5), rng.uniform(1.3, 3.0)
    cv.poly([cam.front(X - 0.15, X + 0.15, 0, trunk_h + r * 0.5, Z)], VEGETATION,
            _jitter(rng, (85, 65, 45), 20), fine=0.06, mid=0.08)
    color = _pick(rng, GREENS, 20)
    m = np.zeros(cv.lab.shape, bool)
    for _ in range(rng.integers(4, 9)):
        cx, cy = cam.project(X + rng.uniform(-0.6, 0.6) * r, Z, trunk_h + r + rng.uniform(-0.5, 0.6) * r)
        ax = cam.size(r * rng.uniform(0.45, 0.8), Z)
        m |= cv.ellipse_mask((cx, cy), (ax, ax * rng.uniform(0.7, 1.2)), rng.uniform(0, 180))
    cv.paint(m, VEGETATION, color, fine=0.12, mid=0.22, low=0.1)


def _pole(cv: _Canvas, cam: _Camera, X: float, Z: float) -> None:
    rng = cv.rng
    height, half = rng.uniform(3.0, 7.0), rng.uniform(0.05, 0.1)
    x0, y0 = cam.project(X, Z, 0)
    x1, y1 = cam.project(X, Z, height)
    hw = max(cam.size(half, Z), 0.6)
    cv.poly([np.array([(x0 - hw, y0), (x0 + hw, y0), (x1 + hw, y1), (x1 - hw, y1)])], POLE,
            _pick(rng, ((130, 130, 135), (55, 60, 60), (40, 70, 50), (170, 170, 165)), 15), fine=0.04)
    kind = rng.choice(['sign', 'light', 'none'], p=[0.45, 0.3, 0.25])
    if kind == 'sign':
        s = rng.uniform(0.6, 0.9)
        cx, cy = cam.project(X, Z, height - s / 2)
        r = cam.size(s / 2, Z)
        shape = rng.integers(3)
        if shape == 0:  # round: red ring, light centre, or plain blue
            outer = _jitter(rng, (200, 30, 30), 20) if rng.random() < 0.6 else _jitter(rng, (30, 70, 160), 20)
            cv.paint(cv.ellipse_mask((cx, cy), (r, r)), SIGN, outer, fine=0.03)
            cv.paint(cv.ellipse_mask((cx, cy), (r * 0.7, r * 0.7)), -1, _jitter(rng, (230, 230, 230), 20))
        elif shape == 1:  # triangle
            tri = np.array([(cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8), (cx, cy - r)])
            cv.poly([tri], SIGN, _jitter(rng, (200, 30, 30), 20), fine=0.03)
            cv.poly([cx + (tri - (cx, cy)) * 0.6], -1, _jitter(rng, (235, 235, 230), 15))
        else:  # rectangle (direction, parking, yellow priority)
            col = _pick(rng, ((30, 70, 160), (230, 190, 40), (235, 235, 235), (30, 110, 60)), 15)
            cv.poly([np.array([(cx - r * 1.2, cy - r), (cx + r * 1.2, cy - r), (cx + r * 1.2, cy + r),
                               (cx - r * 1.2, cy + r)])], SIGN, col, fine=0.03, low=0.05)
    elif kind == 'light':
        bw, bh = rng.uniform(0.3, 0.4), rng.uniform(0.8, 1.0)
        housing = _pick(rng, ((35, 35, 38), (200, 170, 40), (70, 75, 70)), 10)
        cv.poly([cam.front(X - bw / 2, X + bw / 2, height - bh, height, Z)], LIGHT, housing, fine=0.03)
        lit = rng.integers(3)
        for i, lamp in enumerate(((230, 40, 30), (240, 170, 30), (60, 220, 110))):
            cx, cy = cam.project(X, Z, height - bh * (i + 0.5) / 3)
            color = lamp if i == lit else _scale(lamp, 0.3)
            cv.paint(cv.ellipse_mask((cx, cy), (cam.size(bw * 0.3, Z),) * 2), -1, color)
    else:  # a street lamp head: still pole
        cx, cy = cam.project(X, Z, height)
        cv.paint(cv.ellipse_mask((cx, cy), (cam.size(0.35, Z), cam.size(0.12, Z))), POLE,
                 _jitter(rng, (60, 60, 60), 20))


def _person(cv: _Canvas, cam: _Camera, X: float, Z: float) -> None:
    rng = cv.rng
    h = rng.uniform(1.55, 1.95)
    legs, torso = _pick(rng, CLOTHES[:3] + CLOTHES[4:5], 15), _pick(rng, CLOTHES, 25)
    gap = rng.uniform(0.0, 0.12)  # walking stride
    cv.poly([cam.front(X - 0.17 - gap, X - 0.02, 0, 0.48 * h, Z), cam.front(X + 0.02, X + 0.17 + gap, 0, 0.48 * h, Z)],
            PERSON, legs, fine=0.05, mid=0.05)
    cv.poly([cam.front(X - 0.21, X + 0.21, 0.46 * h, 0.83 * h, Z)], PERSON, torso, fine=0.05, mid=0.08)
    cv.poly([cam.front(X - 0.27, X - 0.2, 0.5 * h, 0.81 * h, Z), cam.front(X + 0.2, X + 0.27, 0.5 * h, 0.81 * h, Z)],
            PERSON, torso, fine=0.05)
    cx, cy = cam.project(X, Z, 0.9 * h)
    r = cam.size(0.11, Z)
    cv.paint(cv.ellipse_mask((cx, cy), (r, r * 1.2)), PERSON, _pick(rng, SKIN, 15), fine=0.03)
    if rng.random() < 0.5:  # hair or hat
        cv.paint(cv.ellipse_mask((cx, cy - r * 0.5), (r * 1.05, r * 0.7)), PERSON, _pick(rng, CLOTHES[:2], 10))


def _vehicle(cv: _Canvas, cam: _Camera, X: float, Z: float, kind: int) -> None:
    """A car, truck or bus seen from behind (or from the front, on the other lane)."""
    rng = cv.rng
    w = {CAR: rng.uniform(1.7, 2.0), TRUCK: rng.uniform(2.3, 2.5), BUS: rng.uniform(2.45, 2.55)}[kind]
    h = {CAR: rng.uniform(1.35, 1.7), TRUCK: rng.uniform(3.0, 3.8), BUS: rng.uniform(2.9, 3.3)}[kind]
    x0, x1 = X - w / 2, X + w / 2
    body = _pick(rng, VEHICLES, 20)
    dark, glass = _jitter(rng, (25, 25, 28), 8), _jitter(rng, (45, 55, 70), 15)
    # contact shadow on the ground: not labelled, a context cue
    sx, sy = cam.project(X, Z, 0)
    cv.paint(cv.ellipse_mask((sx, sy), (cam.size(w * 0.6, Z), cam.size(0.25, Z))), -1, _scale(dark, 0.8))
    cv.poly([cam.front(x0 + 0.05, x0 + 0.3, 0, 0.4, Z), cam.front(x1 - 0.3, x1 - 0.05, 0, 0.4, Z)], kind, dark,
            fine=0.05)
    if kind == CAR:
        cv.poly([cam.front(x0, x1, 0.25, 0.62 * h, Z)], CAR, body, fine=0.03, low=0.08)
        top = cam.front(x0 + 0.12 * w, x1 - 0.12 * w, 0.62 * h, h, Z)
        top[0, 0], top[1, 0] = cam.project(x0 + 0.02, Z)[0], cam.project(x1 - 0.02, Z)[0]  # slanted pillars
        cv.poly([top], CAR, body, fine=0.03, low=0.08)
        win = cam.front(x0 + 0.2 * w, x1 - 0.2 * w, 0.66 * h, 0.94 * h, Z)
        win[0, 0], win[1, 0] = cam.project(x0 + 0.1 * w, Z)[0], cam.project(x1 - 0.1 * w, Z)[0]
        cv.poly([win], -1, glass, fine=0.04, low=0.15)
        lamp = _jitter(rng, (200, 30, 30), 20) if rng.random() < 0.7 else _jitter(rng, (235, 230, 200), 15)
        cv.poly([cam.front(x0 + 0.05, x0 + 0.3, 0.45 * h, 0.55 * h, Z),
                 cam.front(x1 - 0.3, x1 - 0.05, 0.45 * h, 0.55 * h, Z)], -1, lamp)
        cv.poly([cam.front(X - 0.26, X + 0.26, 0.3, 0.41, Z)], -1, _jitter(rng, (225, 225, 220), 10))
    elif kind == TRUCK:
        cv.poly([cam.front(x0 + 0.1, x1 - 0.1, 0.3, 1.0, Z)], TRUCK, dark, fine=0.04)
        cv.poly([cam.front(x0, x1, 0.95, h, Z)], TRUCK, body, fine=0.03, mid=0.02, low=0.1)
        cv.poly([cam.front(X - 0.03, X + 0.03, 1.0, h - 0.1, Z)], -1, _scale(body, 0.6))
        cv.poly([cam.front(x0 + 0.1, x0 + 0.35, 1.0, 1.15, Z), cam.front(x1 - 0.35, x1 - 0.1, 1.0, 1.15, Z)], -1,
                _jitter(rng, (200, 40, 30), 15))
    else:
        cv.poly([cam.front(x0, x1, 0.3, h, Z)], BUS, body, fine=0.03, low=0.08)
        cv.poly([cam.front(x0 + 0.15, x1 - 0.15, 0.62 * h, 0.92 * h, Z)], -1, glass, fine=0.04, low=0.15)
        cv.poly([cam.front(x0, x1, 0.4 * h, 0.52 * h, Z)], -1, _pick(rng, VEHICLES, 30), fine=0.04)


def _street_furniture(cv: _Canvas, cam: _Camera, X: float, z_end: float, label: int) -> None:
    """A wall, fence or hedge in front of a facade, over part of the street's length."""
    rng = cv.rng
    z0 = rng.uniform(3, z_end * 0.6)
    z1 = min(z0 + rng.uniform(6, 25), z_end)
    height = rng.uniform(0.8, 2.2)
    quad = cam.side(X, z0, z1, 0, height)
    if label == WALL:
        cv.poly([quad], WALL, _pick(rng, FACADES[:3] + PAVING[:2], 20), fine=0.05, mid=0.04, low=0.1)
    elif label == VEGETATION:
        cv.poly([quad], VEGETATION, _pick(rng, GREENS, 20), fine=0.12, mid=0.22, low=0.1)
    else:  # fence: the background shows through a lattice; all of it is labelled fence, as in Cityscapes
        m = cv.mask([quad])
        cv.img[m] *= rng.uniform(0.5, 0.8)
        cv.lab[m] = FENCE
        bar = _pick(rng, ((50, 70, 50), (130, 130, 130), (120, 90, 60), (40, 40, 45)), 15)
        step = rng.uniform(0.15, 0.4)
        bars = [cam.side(X, z, z + step * 0.35, 0, height) for z in np.arange(z0, z1, step)]
        bars += [cam.side(X, z0, z1, y, y + 0.06) for y in (height * 0.1, height - 0.08)]
        cv.poly(bars, FENCE, bar, fine=0.04)


def _lighting(cv: _Canvas, cam: _Camera, walls: Tuple[float, float], z_end: float) -> np.ndarray:
    """Cast shadows, exposure, colour cast, uneven light, blur and sensor noise; returns uint8 RGB."""
    rng = cv.rng
    h, w = cv.lab.shape
    shade = np.ones((h, w), np.float32)
    if rng.random() < 0.7:  # a row of buildings shades part of the street
        side = rng.choice([0, 1])
        X = walls[side]
        edge = rng.uniform(-abs(walls[0]), abs(walls[1]))
        polys = [cam.ground(min(X, edge), max(X, edge), 1.0, z_end)]
        shade[cv.mask(polys)] = rng.uniform(0.45, 0.75)
    for _ in range(rng.integers(0, 4)):  # blotches of tree shade
        X, Z = rng.uniform(walls[0], walls[1]), rng.uniform(6, 30)
        cx, cy = cam.project(X, Z)
        shade[cv.ellipse_mask((cx, cy), (cam.size(rng.uniform(1, 3), Z), cam.size(rng.uniform(0.4, 1.2), Z)))] \
            *= rng.uniform(0.55, 0.8)
    shade = cv2.GaussianBlur(shade, (0, 0), 1.2)
    img = cv.img * shade[..., None]
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    img *= 1 + rng.uniform(-0.25, 0.25) * xs  # light from one side
    img *= rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, size=3).astype(np.float32)  # exposure, white balance
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))
    img += rng.uniform(1.5, 6.0) * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def draw_scene(rng: np.random.Generator, width: int = 512, height: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """One street scene: (image as uint8 RGB (H, W, 3), Cityscapes label ids (H, W) uint8, 0-33)."""
    cam = _Camera(width, height, rng)
    cv = _Canvas(width, height, rng)
    road_half = rng.uniform(3.5, 7.0)
    walls = (-road_half - rng.uniform(2.0, 4.5), road_half + rng.uniform(2.0, 4.5))
    z_end = rng.uniform(35, 90)
    park = [rng.random() < 0.25 for _ in walls]  # a side without buildings: lawn and trees

    _sky(cv, cam)
    _far_buildings(cv, cam, z_end)
    cv.poly([cam.ground(-1e3, 1e3, 0.5, z_end)], SIDEWALK, _pick(rng, PAVING, 20), fine=0.08, mid=0.04, low=0.1)
    if rng.random() < 0.5:  # paving joints, converging to the vanishing point
        joints = [cam.ground(x, x + 0.04, 0.5, z_end) for x in np.arange(-40, 40, rng.uniform(0.5, 1.0))]
        joints += [cam.ground(-40, 40, z, z + 0.04) for z in np.arange(1, z_end, rng.uniform(0.5, 1.0))]
        cv.poly(joints, -1, _scale(cv.img[-1, width // 2], 0.7), fine=0.05)
    for side, X in enumerate(walls):
        sign = -1 if X < 0 else 1
        if park[side]:
            cv.poly([cam.ground(X if sign > 0 else -200, 200 if sign > 0 else X, 0.5, z_end)], TERRAIN,
                    _pick(rng, GRASS, 20), fine=0.05, mid=0.05, low=0.12)
        else:
            _side_buildings(cv, cam, X, z_end)
        if rng.random() < 0.45:  # a strip of lawn along the curb
            g = rng.uniform(0.8, 2.0)
            a, b = sorted((sign * road_half, sign * (road_half + g)))
            cv.poly([cam.ground(a, b, 0.5, z_end)], TERRAIN, _pick(rng, GRASS, 20), fine=0.05, mid=0.05, low=0.12)
        if rng.random() < 0.5:
            _street_furniture(cv, cam, X - sign * 0.3, z_end, rng.choice([WALL, FENCE, VEGETATION]))

    cv.poly([cam.ground(-road_half, road_half, 0.5, z_end)], ROAD, _pick(rng, ASPHALT, 15), fine=0.07, mid=0.03,
            low=0.1)
    marks = [cam.ground(-0.07, 0.07, z, z + 3) for z in np.arange(rng.uniform(0, 6), z_end, 9)]
    marks += [cam.ground(s * (road_half - 0.35), s * (road_half - 0.2), 0.5, z_end) for s in (-1, 1)
              if rng.random() < 0.6]
    cv.poly(marks, -1, _jitter(rng, (215, 215, 205), 15), fine=0.05)
    curb = _jitter(rng, (170, 170, 165), 20)
    cv.poly([cam.ground(s * road_half, s * (road_half + 0.2), 0.5, z_end) for s in (-1, 1)], SIDEWALK, curb)

    objects = []  # (depth, draw function, args): painted far to near
    for side, X in enumerate(walls):
        sign = -1 if X < 0 else 1
        if rng.random() < (0.9 if park[side] else 0.55):
            for z in np.arange(rng.uniform(6, 14), z_end, rng.uniform(7, 14)):
                tx = sign * (road_half + 0.9) if not park[side] else X + sign * rng.uniform(-1, 15)
                objects.append((z, _tree, (tx, z)))
    for _ in range(rng.integers(2, 6)):
        objects.append((z := rng.uniform(6, z_end * 0.8), _pole, (rng.choice([-1, 1]) * (road_half + 0.45), z)))
    for _ in range(rng.integers(0, 7)):
        side = rng.integers(2)
        X = rng.uniform(road_half + 0.5, abs(walls[side]) - 0.4) * (1 if side else -1)
        objects.append((z := rng.uniform(6, 45), _person, (X, z)))
    for _ in range(rng.integers(1, 6)):
        lane = rng.choice([-0.5, 0.5, -0.82, 0.82])  # two lanes, two parking rows
        objects.append((z := rng.uniform(7, z_end * 0.9), _vehicle, (lane * road_half, z, CAR)))
    if rng.random() < 0.45:
        kind = TRUCK if rng.random() < 0.5 else BUS
        objects.append((z := rng.uniform(9, z_end * 0.8), _vehicle, (rng.choice([-0.5, 0.5]) * road_half, z, kind)))
    for _, fn, args in sorted(objects, key=lambda o: -o[0]):
        fn(cv, cam, *args)

    if rng.random() < 0.4:  # the ego vehicle's bonnet: label 'ego vehicle', ignored in training as in Cityscapes
        m = cv.ellipse_mask((width * rng.uniform(0.4, 0.6), height * rng.uniform(1.02, 1.12)),
                            (width * rng.uniform(0.6, 0.9), height * rng.uniform(0.1, 0.16)))
        cv.paint(m, EGO, _pick(rng, VEHICLES, 20), fine=0.02, low=0.2)
    return _lighting(cv, cam, walls, z_end), cv.lab
