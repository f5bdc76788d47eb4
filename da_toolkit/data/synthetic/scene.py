"""Sample a scene description (camera, surfaces, materials, lights) from a domain.

Everything random is drawn here from ``numpy.random.default_rng([seed, index])``, so a scene is a
pure function of ``(domain, seed, index)``; rendering is deterministic.

World frame: metres, y up, floor/ground at y = 0.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from da_toolkit.data.synthetic.domain import TEXTURE_FAMILIES, SceneDomain


@dataclass
class Materials:
    """Per-surface materials, arrays over surfaces ``(S,)`` / ``(S, 3)``."""

    family: np.ndarray  # int (S,), index into TEXTURE_FAMILIES
    color_a: np.ndarray  # float32 (S, 3) in [0, 1]
    color_b: np.ndarray  # float32 (S, 3)
    frequency: np.ndarray  # float32 (S,), cycles per metre
    angle: np.ndarray  # float32 (S,), stripe orientation, radians
    noise_seed: np.ndarray  # uint32 (S,)


@dataclass
class Scene:
    """A sampled scene.

    Surfaces are numbered: the fixed planes first (``planes``), then boxes, spheres, cylinders.
    """

    outdoor: bool
    position: np.ndarray  # float32 (3,) camera centre
    rotation: np.ndarray  # float32 (3, 3) world_from_camera (camera x right, y up, z forward)
    hfov: float  # radians
    # planes: (axis, offset, facing sign, seg class); a ray hits a plane from the side facing it
    planes: list[tuple[int, float, float, int]]
    boxes: np.ndarray  # float32 (Nb, 7): cx, cy, cz, hx, hy, hz, yaw
    spheres: np.ndarray  # float32 (Ns, 4): cx, cy, cz, r
    cylinders: np.ndarray  # float32 (Nc, 5): cx, cz, r, height, unused
    materials: Materials
    light_dir: np.ndarray  # float32 (3,) unit, towards the light
    light_intensity: float
    ambient: float
    sky_horizon: np.ndarray  # float32 (3,)
    sky_zenith: np.ndarray  # float32 (3,)
    fog: float
    far: float
    shadows: bool = True


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """world_from_camera for yaw (about y), pitch (positive = up) and roll, radians."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(-pitch), math.sin(-pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (ry @ rx @ rz).astype(np.float32)


def _color(rng: np.random.Generator, saturation: tuple[float, float]) -> np.ndarray:
    hsv = (rng.uniform(), _u(rng, saturation), rng.uniform(0.35, 0.95))
    return np.array(colorsys.hsv_to_rgb(*hsv), dtype=np.float32)


def _materials(rng: np.random.Generator, domain: SceneDomain, count: int) -> Materials:
    families = [TEXTURE_FAMILIES.index(f) for f in domain.textures]
    color_a = np.stack([_color(rng, domain.saturation) for _ in range(count)])
    # second colour: a darker/lighter variant so patterns keep some contrast
    color_b = np.clip(color_a * rng.uniform(0.35, 0.75, size=(count, 1)) + rng.uniform(0, 0.15, size=(count, 3)), 0, 1)
    return Materials(
        family=rng.choice(families, size=count).astype(np.int64),
        color_a=color_a.astype(np.float32),
        color_b=color_b.astype(np.float32),
        frequency=rng.uniform(*domain.texture_frequency, size=count).astype(np.float32),
        angle=rng.uniform(0, math.pi, size=count).astype(np.float32),
        noise_seed=rng.integers(0, 2**31 - 1, size=count).astype(np.uint32),
    )


def _box(rng: np.random.Generator, x: float, z: float, size: float) -> list[float]:
    """Yawed box resting on the floor: cx, cy, cz, hx, hy, hz, yaw."""
    h = size * rng.uniform(0.4, 1.2) / 2
    return [x, h, z, size * rng.uniform(0.3, 0.6), h, size * rng.uniform(0.3, 0.6), rng.uniform(0, math.pi)]


def _sphere(rng: np.random.Generator, x: float, z: float, size: float) -> list[float]:
    """Sphere on (or slightly above) the floor: cx, cy, cz, r."""
    r = size / 2
    return [x, r + rng.uniform(0, 0.3) * r, z, r]


def _cylinder(rng: np.random.Generator, x: float, z: float, size: float) -> list[float]:
    """Vertical cylinder standing on the floor: cx, cz, r, height, 0."""
    return [x, z, size * rng.uniform(0.2, 0.45), size * rng.uniform(0.8, 2.5), 0.0]


_OBJECT_BUILDERS = {"box": _box, "sphere": _sphere, "cylinder": _cylinder}


def sample_scene(domain: SceneDomain, seed: int, index: int) -> Scene:
    """Draw scene ``index`` of the stream ``seed`` from ``domain`` (deterministic)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    outdoor = domain.scene == "outdoor" or (domain.scene == "mixed" and rng.uniform() < domain.outdoor_fraction)
    hfov = math.radians(_u(rng, domain.fov_deg))
    height = _u(rng, domain.camera_height)
    pitch = math.radians(_u(rng, domain.pitch_deg))
    roll = math.radians(_u(rng, domain.roll_deg))

    if outdoor:
        planes = [(1, 0.0, 1.0, 1)]  # ground y=0 seen from above, class floor/ground
        cam_xz = np.zeros(2)
        yaw = 0.0
        bounds = None
    else:
        width, length = _u(rng, domain.room_size), _u(rng, domain.room_size)
        ceiling = max(_u(rng, domain.room_height), height + 0.3)
        hx, hz = width / 2, length / 2
        planes = [
            (1, 0.0, 1.0, 1),  # floor
            (1, ceiling, -1.0, 3),  # ceiling, seen from below
            (0, -hx, 1.0, 2),  # left wall
            (0, hx, -1.0, 2),  # right wall
            (2, -hz, 1.0, 2),  # back wall
            (2, hz, -1.0, 2),  # front wall
        ]
        cam_xz = np.array([rng.uniform(-hx / 2, hx / 2), -hz + rng.uniform(0.3, max(0.31, length / 3))])
        yaw = rng.uniform(-0.5, 0.5)
        bounds = (hx, hz)
    position = np.array([cam_xz[0], height, cam_xz[1]], dtype=np.float32)

    count = int(rng.integers(domain.num_objects[0], domain.num_objects[1] + 1))
    kinds = rng.choice(len(domain.object_types), size=count)
    shapes: dict[str, list[list[float]]] = {name: [] for name in _OBJECT_BUILDERS}
    for k in kinds:
        size = _u(rng, domain.object_size)
        dist = _u(rng, domain.object_distance)
        ang = yaw + rng.uniform(-0.45, 0.45) * hfov
        x, z = cam_xz[0] + dist * math.sin(ang), cam_xz[1] + dist * math.cos(ang)
        if bounds is not None:
            x = float(np.clip(x, -bounds[0] + size / 2, bounds[0] - size / 2))
            z = float(np.clip(z, -bounds[1] + size / 2, bounds[1] - size / 2))
        # keep the camera outside every object
        away = math.hypot(x - cam_xz[0], z - cam_xz[1])
        if away < size + 0.3:
            continue
        kind = domain.object_types[int(k)]
        shapes[kind].append(_OBJECT_BUILDERS[kind](rng, x, z, size))

    boxes, spheres, cylinders = shapes["box"], shapes["sphere"], shapes["cylinder"]
    n_surfaces = len(planes) + len(boxes) + len(spheres) + len(cylinders)
    materials = _materials(rng, domain, n_surfaces)
    sun_el = math.radians(_u(rng, domain.sun_elevation_deg))
    sun_az = rng.uniform(-math.pi, math.pi)
    light_dir = np.array(
        [math.cos(sun_el) * math.sin(sun_az), math.sin(sun_el), math.cos(sun_el) * math.cos(sun_az)], dtype=np.float32
    )
    zenith = np.array(colorsys.hsv_to_rgb(rng.uniform(0.55, 0.66), rng.uniform(0.3, 0.7), rng.uniform(0.7, 1.0)))
    horizon = np.clip(zenith * 0.4 + 0.6 * rng.uniform(0.8, 1.0), 0, 1)
    return Scene(
        outdoor=bool(outdoor),
        position=position,
        rotation=_rotation(yaw, pitch, roll),
        hfov=hfov,
        planes=planes,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 7),
        spheres=np.asarray(spheres, dtype=np.float32).reshape(-1, 4),
        cylinders=np.asarray(cylinders, dtype=np.float32).reshape(-1, 5),
        materials=materials,
        light_dir=light_dir,
        light_intensity=_u(rng, domain.light_intensity),
        ambient=_u(rng, domain.ambient),
        sky_horizon=horizon.astype(np.float32),
        sky_zenith=zenith.astype(np.float32),
        fog=_u(rng, domain.fog) if outdoor else 0.0,
        far=float(domain.far),
        shadows=bool(domain.shadows),
    )
