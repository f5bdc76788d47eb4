"""Tests of the synthetic scene generator against closed-form geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from da_toolkit.data.sources import SyntheticScenes
from da_toolkit.data.synthetic import SceneDomain, render_scene, sample_scene
from da_toolkit.data.synthetic.domain import indoor_domain, outdoor_domain


def _backproject(sample, scene):
    """World points of every pixel from depth + intrinsics + the scene camera (independent of the renderer)."""
    k = sample["intrinsics"]
    h, w = sample["depth"].shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = sample["depth"].astype(np.float64)
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, -(v - k[1, 2]) / k[1, 1] * z, z])  # camera y up
    return scene.position[:, None, None] + np.einsum("ij,jhw->ihw", scene.rotation.astype(np.float64), cam)


def test_sample_contract_and_determinism():
    src = SyntheticScenes(length=4, size=(24, 32), seed=7)
    a, b = src[2], SyntheticScenes(length=4, size=(24, 32), seed=7)[2]
    assert a["image"].dtype == np.uint8 and a["image"].shape == (24, 32, 3)
    assert a["depth"].dtype == np.float32 and a["valid"].dtype == bool and a["seg"].dtype == np.int64
    assert a["depth_kind"] == "metric" and a["intrinsics"].shape == (3, 3)
    assert a["meta"] == b["meta"] and a["meta"]["id"] == "seed7/00000002"
    for key in ("image", "depth", "valid", "seg"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(src[1]["image"], a["image"])
    assert not np.array_equal(SyntheticScenes(4, (24, 32), seed=8)[2]["image"], a["image"])
    assert (a["depth"][a["valid"]] > 0).all() and (a["depth"][~a["valid"]] == 0).all()
    assert ((a["seg"] == 0) == ~a["valid"]).all()  # sky <-> invalid
    with pytest.raises(IndexError):
        src[4]


def test_outdoor_ground_plane_closed_form():
    dom = SceneDomain(scene="outdoor", num_objects=(0, 0), pitch_deg=(0, 0), roll_deg=(0, 0),
                      camera_height=(1.5, 1.5), fov_deg=(60, 60), far=1000.0)
    s = SyntheticScenes(1, (40, 64), domain=dom)[0]
    k = s["intrinsics"]
    assert k[0, 0] == pytest.approx(32 / math.tan(math.radians(30)))
    v = np.arange(40, dtype=np.float64)
    below = v > k[1, 2]
    # ground y=0 seen from height h with a level camera: z = h * fy / (v - cy)
    expect = 1.5 * k[1, 1] / (v[below] - k[1, 2])
    np.testing.assert_allclose(s["depth"][below, :], np.repeat(expect[:, None], 64, 1), rtol=1e-4)
    assert not s["valid"][~below].any() and (s["seg"][~below] == 0).all()
    assert (s["seg"][below] == 1).all()


def test_room_surfaces_backproject_onto_their_planes():
    dom = SceneDomain(scene="room", num_objects=(0, 0), roll_deg=(0, 0))
    for i in range(3):
        scene = sample_scene(dom, 0, i)
        s = render_scene(scene, 30, 40)
        assert s["valid"].all()  # a closed room has no sky
        pts = _backproject(s, scene)
        np.testing.assert_allclose(pts[1][s["seg"] == 1], 0.0, atol=1e-3)  # floor at y = 0
        ceiling = [p for p in scene.planes if p[3] == 3][0][1]
        np.testing.assert_allclose(pts[1][s["seg"] == 3], ceiling, atol=1e-3)
        walls = s["seg"] == 2
        xs = [p[1] for p in scene.planes if p[0] == 0]
        zs = [p[1] for p in scene.planes if p[0] == 2]
        dist = np.minimum(
            np.min([np.abs(pts[0] - x) for x in xs], axis=0), np.min([np.abs(pts[2] - z) for z in zs], axis=0)
        )
        assert (dist[walls] < 1e-3).all()


def test_objects_backproject_onto_their_surfaces():
    dom = SceneDomain(scene="outdoor", num_objects=(6, 6), object_distance=(3, 6), object_size=(0.8, 1.5))
    checked = set()
    for i in range(6):
        scene = sample_scene(dom, 1, i)
        s = render_scene(scene, 48, 64)
        pts = _backproject(s, scene).reshape(3, -1)
        seg = s["seg"].ravel()
        if (seg == 5).any():  # spheres: some sphere surface |p - c| = r
            p = pts[:, seg == 5]
            err = np.min([np.abs(np.linalg.norm(p - c[:3, None], axis=0) - c[3]) for c in scene.spheres], axis=0)
            assert err.max() < 2e-3
            checked.add("sphere")
        if (seg == 4).any():  # boxes: max-norm of the point in box coordinates equals 1
            p = pts[:, seg == 4]
            errs = []
            for cx, cy, cz, hx, hy, hz, yaw in scene.boxes:
                c, sn = math.cos(yaw), math.sin(yaw)
                rx, ry, rz = p[0] - cx, p[1] - cy, p[2] - cz
                local = np.stack([(c * rx - sn * rz) / hx, ry / hy, (sn * rx + c * rz) / hz])
                errs.append(np.abs(np.abs(local).max(axis=0) - 1))
            assert np.min(errs, axis=0).max() < 5e-3
            checked.add("box")
        if (seg == 6).any():  # cylinders: on the side (radius r) or on the top cap (y = height)
            p = pts[:, seg == 6]
            errs = []
            for cx, cz, r, hgt, _ in scene.cylinders:
                radial = np.hypot(p[0] - cx, p[2] - cz)
                side = np.abs(radial - r) + np.maximum(0, p[1] - hgt)
                cap = np.abs(p[1] - hgt) + np.maximum(0, radial - r)
                errs.append(np.minimum(side, cap))
            assert np.min(errs, axis=0).max() < 5e-3
            checked.add("cylinder")
    assert checked == {"sphere", "box", "cylinder"}


def test_domain_knobs_shift_the_statistics():
    indoor = SyntheticScenes(12, (24, 32), domain=indoor_domain())
    outdoor = SyntheticScenes(12, (24, 32), seed=1, domain=outdoor_domain())
    sky_in = np.mean([(indoor[i]["seg"] == 0).mean() for i in range(12)])
    sky_out = np.mean([(outdoor[i]["seg"] == 0).mean() for i in range(12)])
    assert sky_in == 0.0 and sky_out > 0.2
    med_in = np.median(np.concatenate([indoor[i]["depth"][indoor[i]["valid"]] for i in range(12)]))
    med_out = np.median(np.concatenate([outdoor[i]["depth"][outdoor[i]["valid"]] for i in range(12)]))
    assert med_out > 2 * med_in
    flat = SyntheticScenes(2, (24, 32), domain=SceneDomain(scene="room", textures=("flat",), num_objects=(0, 0)))
    checker = SyntheticScenes(2, (24, 32), domain=SceneDomain(scene="room", textures=("checker",), num_objects=(0, 0), texture_frequency=(3, 3)))
    # flat surfaces: one colour per surface up to shading -> fewer distinct colours than checkers
    colours = lambda s: len(np.unique(s["image"].reshape(-1, 3), axis=0))  # noqa: E731
    assert colours(flat[0]) < colours(checker[0])


def test_unlabeled_mode_and_validation():
    s = SyntheticScenes(2, (8, 8), labeled=False)[0]
    assert set(s) == {"image", "meta", "intrinsics"}
    with pytest.raises(ValueError, match="textures"):
        SceneDomain(textures=("plaid",))
    with pytest.raises(ValueError, match="fov_deg"):
        SceneDomain(fov_deg=(80.0, 60.0))
    with pytest.raises(ValueError, match="size"):
        SyntheticScenes(2, (1, 8))


def test_built_from_a_recipe_with_jsonargparse():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--data", type=SyntheticScenes)
    cfg = parser.parse_object({"data": {"class_path": "da_toolkit.data.sources.SyntheticScenes", "init_args": {
        "length": 3, "size": [16, 20], "domain": {"scene": "outdoor", "textures": ["noise"], "fov_deg": [40, 50]}}}})
    src = parser.instantiate(cfg).data
    assert isinstance(src, SyntheticScenes) and len(src) == 3 and src.domain.textures == ("noise",)
    assert src[0]["image"].shape == (16, 20, 3)


def test_sphere_shadow_matches_an_analytic_shadow_test():
    import dataclasses

    dom = SceneDomain(scene="outdoor", num_objects=(1, 1), object_types=("sphere",), object_distance=(3, 5),
                      object_size=(1.0, 1.5), sun_elevation_deg=(30, 50), textures=("flat",), fog=(0, 0))
    checked = 0
    for i in range(20):
        scene = sample_scene(dom, 0, i)
        if len(scene.spheres) != 1:
            continue
        lit = render_scene(dataclasses.replace(scene, shadows=False), 48, 64)
        shaded = render_scene(scene, 48, 64)
        darker = (shaded["image"].astype(int).sum(-1) < lit["image"].astype(int).sum(-1))
        ground = shaded["seg"] == 1
        pts = _backproject(shaded, scene)
        c, r = scene.spheres[0, :3].astype(np.float64), float(scene.spheres[0, 3])
        rel = c[:, None, None] - pts
        along = np.einsum("i,ihw->hw", scene.light_dir.astype(np.float64), rel)
        perp2 = (rel**2).sum(0) - along**2
        expect = ground & (along > 0) & (perp2 < r * r)
        if expect.sum() < 10:
            continue
        diff = (darker & ground) ^ expect
        assert diff.sum() <= max(3, 0.05 * expect.sum())  # boundary pixels only
        checked += 1
    assert checked >= 2
