"""Procedural synthetic scenes: domain knobs, scene sampling and vectorised numpy ray casting."""

from da_toolkit.data.synthetic.domain import SceneDomain
from da_toolkit.data.synthetic.render import SEG_CLASSES, render_scene
from da_toolkit.data.synthetic.scene import Scene, sample_scene

__all__ = ["SEG_CLASSES", "Scene", "SceneDomain", "render_scene", "sample_scene"]
