"""Procedural scenes: textured shapes on cluttered backgrounds.

Every scene knows its objects (category, box, mask, polygon), so the same
rendering feeds the ImageNet-style classification folders, COCO instance
annotations and ADE20K-style semantic maps. A category is a (shape, texture)
pair; colours, sizes, positions, rotations and clutter are random, so a model
has to learn shape and texture, not a colour.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
TEXTURES = ("solid", "stripes", "checker")
# All categories, in a fixed order: index = shape-major.
CATEGORIES: Tuple[Tuple[str, str], ...] = tuple((s, t) for s in SHAPES for t in TEXTURES)


def category_name(index: int) -> str:
    shape, texture = CATEGORIES[index]
    return f"{texture} {shape}"


@dataclass
class SceneObject:
    category: int                       # index into CATEGORIES
    polygon: List[Tuple[float, float]]  # outline, image coordinates
    mask: np.ndarray = field(repr=False)  # bool HxW, visible part only (after occlusion)

    @property
    def box(self) -> Tuple[float, float, float, float]:
        """Tight box (x0, y0, x1, y1) of the visible mask, pixel-edge coordinates."""
        ys, xs = np.nonzero(self.mask)
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    image: np.ndarray                   # uint8 HxWx3
    objects: List[SceneObject]


def _outline(shape: str, cx: float, cy: float, r: float, angle: float) -> List[Tuple[float, float]]:
    if shape == "circle":
        pts = [(math.cos(2 * math.pi * k / 32), math.sin(2 * math.pi * k / 32)) for k in range(32)]
    elif shape == "square":
        pts = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "diamond":
        pts = [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]
    elif shape == "cross":
        a, b = 0.3, 0.95
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a),
               (-b, a), (-b, -a), (-a, -a)]
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.45
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(30, 226, size=3).astype(np.float32)


def _texture(texture: str, h: int, w: int, colour: np.ndarray, rng: np.random.Generator,
             period: float) -> np.ndarray:
    """HxWx3 float pattern for one object."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if texture == "solid":
        on = np.ones((h, w), bool)
    elif texture == "stripes":
        theta = rng.uniform(0, math.pi)
        on = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period) > 0
    elif texture == "checker":
        on = ((xx // (period / 2)).astype(int) + (yy // (period / 2)).astype(int)) % 2 == 0
    else:
        raise ValueError(f"unknown texture {texture!r}")
    # The "off" part is the complementary colour, so stripes stay visible on any hue.
    off = 255.0 - colour
    return np.where(on[..., None], colour, off)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Muted (pulled towards grey) so that objects stand out from the background.
    c0, c1 = 0.4 * _random_colour(rng) + 0.6 * 128, 0.4 * _random_colour(rng) + 0.6 * 128
    theta = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(theta) + yy * math.sin(theta)) / max(h, w)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    # Clutter: thin random lines and small blobs, never a whole category shape.
    canvas = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(2, 6)):
        x0, y0, x1, y1 = rng.uniform(0, [w, h, w, h])
        draw.line([(x0, y0), (x1, y1)], fill=tuple(int(v) for v in _random_colour(rng)),
                  width=int(rng.integers(1, max(2, w // 32) + 1)))
    for _ in range(rng.integers(2, 6)):
        x, y = rng.uniform(0, [w, h])
        s = rng.uniform(1, max(2, w / 16))
        draw.rectangle([x, y, x + s, y + s * rng.uniform(0.3, 1.0)],
                       fill=tuple(int(v) for v in _random_colour(rng)))
    return np.asarray(canvas, dtype=np.float32)


def render_scene(rng: np.random.Generator, size: int, categories: Sequence[int],
                 scale: Tuple[float, float] = (0.25, 0.42), noise: float = 8.0,
                 min_visible: float = 0.35) -> Scene:
    """Render the given categories (one object each, painted in order) on a cluttered
    background. ``scale`` is the object radius as a fraction of ``size``. Objects
    hidden below ``min_visible`` of their own area are dropped from the annotations."""
    h = w = size
    img = _background(h, w, rng)
    objects: List[SceneObject] = []
    full_areas: List[int] = []
    for cat in categories:
        shape, texture = CATEGORIES[cat]
        r = rng.uniform(*scale) * size
        cx, cy = rng.uniform(r * 0.8, size - r * 0.8, size=2)
        poly = _outline(shape, cx, cy, r, rng.uniform(0, 2 * math.pi))
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).polygon(poly, fill=255)
        mask = np.asarray(m) > 127
        if not mask.any():
            continue
        pattern = _texture(texture, h, w, _random_colour(rng), rng, period=max(size / 8, r / 2))
        img[mask] = pattern[mask]
        # A dark or light outline, as drawn objects have; the mask includes it.
        edge = Image.new("L", (w, h), 0)
        ImageDraw.Draw(edge).polygon(poly, outline=255, width=max(1, size // 32))
        rim = np.asarray(edge) > 127
        img[rim] = 20.0 if rng.random() < 0.5 else 235.0
        mask = mask | rim
        for prev in objects:  # occlusion: later objects cover earlier ones
            prev.mask &= ~mask
        objects.append(SceneObject(cat, poly, mask))
        full_areas.append(int(mask.sum()))
    img += rng.normal(0, noise, size=img.shape)
    kept = [o for o, a in zip(objects, full_areas) if o.area >= max(1, min_visible * a)]
    return Scene(img.clip(0, 255).astype(np.uint8), kept)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent, reproducible stream per image: the files do not depend on how
    many images are written, or in which order."""
    tag = sum(ord(c) * 31 ** i for i, c in enumerate(split)) % (2 ** 31)
    return np.random.default_rng([seed, tag, index])


def multi_object_scene(seed: int, tag: str, index: int, categories: Sequence[int], size: int,
                       objects_per_image: Tuple[int, int], scale: Tuple[float, float]) -> Scene:
    """The detection/segmentation scenes: a random number of objects of random
    categories, reproducible from (seed, tag, index)."""
    rng = image_rng(seed, tag, index)
    count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    cats = [categories[int(i)] for i in rng.integers(0, len(categories), size=count)]
    return render_scene(rng, size, cats, scale=scale)


def multi_object_spec(layout: str, categories: Sequence[int], train_images: int, val_images: int, size: int,
                      seed: int, objects_per_image: Tuple[int, int], scale: Tuple[float, float]) -> dict:
    """The spec of a detection/segmentation scene set (what manifest.json records)."""
    categories = [int(c) for c in categories]
    if not categories or len(set(categories)) != len(categories):
        raise ValueError(f"categories must be non-empty and distinct, got {categories}")
    return dict(categories=categories, train_images=train_images, val_images=val_images, size=size, seed=seed,
                objects_per_image=list(objects_per_image), scale=list(scale), layout=layout)


def written_before(root, spec: dict) -> bool:
    """True when ``root`` already holds data written from exactly ``spec``. Otherwise
    the old manifest is removed, so that a rewrite stopping half-way can never pass
    for the earlier spec's data."""
    manifest = Path(root) / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == spec:
        return True
    manifest.unlink(missing_ok=True)
    return False


def mark_written(root, spec: dict) -> None:
    (Path(root) / "manifest.json").write_text(json.dumps(spec, indent=1))
