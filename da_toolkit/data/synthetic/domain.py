"""Domain knobs of the synthetic scene generator.

A *domain* is a distribution over scenes. Recipes define a labeled source domain and a shifted
target domain by changing these knobs (e.g. indoor checker rooms vs outdoor noise-textured
fields with other lighting and field of view). Every range is ``(low, high)``, sampled uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

TextureFamily = Literal["flat", "checker", "stripes", "noise"]
ObjectType = Literal["box", "sphere", "cylinder"]
SceneKind = Literal["room", "outdoor", "mixed"]

TEXTURE_FAMILIES: tuple[str, ...] = ("flat", "checker", "stripes", "noise")
OBJECT_TYPES: tuple[str, ...] = ("box", "sphere", "cylinder")


@dataclass(frozen=True)
class SceneDomain:
    """Distribution of synthetic scenes.

    Args:
        scene: ``"room"`` (floor, four walls, ceiling), ``"outdoor"`` (ground plane to the
            horizon plus sky) or ``"mixed"`` (outdoor with probability ``outdoor_fraction``).
        outdoor_fraction: share of outdoor scenes when ``scene="mixed"``.
        textures: texture families drawn per surface.
        object_types: primitive types drawn per object.
        num_objects: inclusive range of the object count.
        fov_deg: horizontal field of view, degrees.
        camera_height: camera height above the floor/ground, metres.
        pitch_deg: camera pitch, degrees (negative = looking down).
        roll_deg: camera roll, degrees.
        sun_elevation_deg: elevation of the directional light, degrees.
        light_intensity: directional light strength (Lambertian term).
        ambient: ambient light level.
        saturation: colour saturation of the surface colours (0 = grey).
        texture_frequency: pattern cycles per metre.
        room_size: room width and length, metres.
        room_height: room height, metres.
        object_distance: distance of the objects from the camera, metres (clamped in rooms).
        object_size: object size, metres.
        far: outdoor ground farther than this (metres) is treated as sky (invalid depth).
        fog: outdoor extinction per metre (0 = none); colours fade to the horizon colour.
        shadows: objects cast hard shadows of the directional light (on everything).
    """

    scene: SceneKind = "mixed"
    outdoor_fraction: float = 0.5
    textures: tuple[TextureFamily, ...] = ("flat", "checker", "stripes", "noise")
    object_types: tuple[ObjectType, ...] = ("box", "sphere", "cylinder")
    num_objects: tuple[int, int] = (2, 6)
    fov_deg: tuple[float, float] = (55.0, 75.0)
    camera_height: tuple[float, float] = (1.2, 1.8)
    pitch_deg: tuple[float, float] = (-15.0, 5.0)
    roll_deg: tuple[float, float] = (-3.0, 3.0)
    sun_elevation_deg: tuple[float, float] = (25.0, 70.0)
    light_intensity: tuple[float, float] = (0.5, 0.9)
    ambient: tuple[float, float] = (0.25, 0.45)
    saturation: tuple[float, float] = (0.3, 0.8)
    texture_frequency: tuple[float, float] = (0.5, 2.0)
    room_size: tuple[float, float] = (4.0, 9.0)
    room_height: tuple[float, float] = (2.4, 3.5)
    object_distance: tuple[float, float] = (1.5, 20.0)
    object_size: tuple[float, float] = (0.3, 1.5)
    far: float = 80.0
    fog: tuple[float, float] = (0.0, 0.02)
    shadows: bool = True

    def __post_init__(self) -> None:
        if self.scene not in ("room", "outdoor", "mixed"):
            raise ValueError(f"SceneDomain.scene={self.scene!r}: expected 'room', 'outdoor' or 'mixed'")
        if not 0.0 <= self.outdoor_fraction <= 1.0:
            raise ValueError(f"SceneDomain.outdoor_fraction={self.outdoor_fraction}: expected a value in [0, 1]")
        for name, allowed in (("textures", TEXTURE_FAMILIES), ("object_types", OBJECT_TYPES)):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value:
                raise ValueError(f"SceneDomain.{name} is empty; expected some of {allowed}")
            unknown = [v for v in value if v not in allowed]
            if unknown:
                raise ValueError(f"SceneDomain.{name}: unknown {unknown}; expected some of {allowed}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("textures", "object_types") or not isinstance(value, (tuple, list)):
                continue
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"SceneDomain.{f.name}={value!r}: expected a range (low, high) with low <= high")
            object.__setattr__(self, f.name, tuple(value))
        if self.num_objects[0] < 0:
            raise ValueError(f"SceneDomain.num_objects={self.num_objects}: counts must be >= 0")
        if not (1.0 <= self.fov_deg[0] and self.fov_deg[1] < 170.0):
            raise ValueError(f"SceneDomain.fov_deg={self.fov_deg}: expected degrees in [1, 170)")
        if self.far <= 0:
            raise ValueError(f"SceneDomain.far={self.far}: expected > 0 metres")
        if self.camera_height[0] <= 0 or self.object_size[0] <= 0 or self.object_distance[0] <= 0:
            raise ValueError("SceneDomain camera_height, object_size and object_distance must be > 0")


def indoor_domain() -> SceneDomain:
    """A preset *source* domain: rooms with checker/stripe/flat textures, wide FOV."""
    return SceneDomain(scene="room", textures=("flat", "checker", "stripes"), fov_deg=(60.0, 75.0))


def outdoor_domain() -> SceneDomain:
    """A preset *shifted target* domain: outdoor fields, noise textures, narrower FOV, fog."""
    return SceneDomain(
        scene="outdoor",
        textures=("noise", "stripes"),
        fov_deg=(40.0, 55.0),
        camera_height=(1.5, 2.5),
        sun_elevation_deg=(10.0, 40.0),
        fog=(0.005, 0.03),
    )
