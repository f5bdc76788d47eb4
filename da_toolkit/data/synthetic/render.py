"""Vectorised numpy ray casting of a :class:`~da_toolkit.data.synthetic.scene.Scene`.

One pinhole ray per pixel centre. Per-surface-type intersections are computed for all rays at
once (``(N, H*W)`` arrays), the nearest hit wins, then textures (uv from the dominant normal
axis) and Lambertian + ambient shading are evaluated for the winning surface. Outputs metric
**z-depth** (distance along the optical axis, metres), not ray length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from da_toolkit.data.synthetic.scene import Scene

SEG_CLASSES: dict[int, str] = {0: "sky", 1: "floor", 2: "wall", 3: "ceiling", 4: "box", 5: "sphere", 6: "cylinder"}
"""Semantic labels of synthetic samples (``seg``); sky pixels have invalid depth."""

_SKY, _BOX, _SPHERE, _CYLINDER = 0, 4, 5, 6
_EPS = 1e-4
_INF = np.float32(np.inf)


def intrinsics_for(hfov: float, height: int, width: int) -> tuple[float, float, float, float]:
    """``fx, fy, cx, cy`` (pixels) of square pixels with horizontal FOV ``hfov`` (radians).

    Pixel ``(u, v)`` is centred at integer coordinates, so ``cx = (W - 1) / 2``.
    """
    fx = (width / 2.0) / math.tan(hfov / 2.0)
    return fx, fx, (width - 1) / 2.0, (height - 1) / 2.0


def _rays(scene: Scene, height: int, width: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    fx, fy, cx, cy = intrinsics_for(scene.hfov, height, width)
    u = (np.arange(width, dtype=np.float32) - cx) / fx
    v = -(np.arange(height, dtype=np.float32) - cy) / fy  # camera y up, image v down
    cam = np.empty((3, height, width), dtype=np.float32)
    cam[0] = u[None, :]
    cam[1] = v[:, None]
    cam[2] = 1.0  # camera-z of every direction is 1, so the hit parameter t IS the z-depth
    dirs = scene.rotation @ cam.reshape(3, -1)
    return dirs.astype(np.float32), (fx, fy, cx, cy)


def _argmax3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index (0, 1, 2) of the largest of three arrays, element-wise (faster than argmax(axis=0))."""
    return np.where((a >= b) & (a >= c), 0, np.where(b >= c, 1, 2))


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)


def _planes(scene: Scene, d: np.ndarray) -> np.ndarray:
    out = np.full((len(scene.planes), d.shape[1]), _INF, dtype=np.float32)
    for i, (axis, offset, facing, _cls) in enumerate(scene.planes):
        da = d[axis]
        t = (offset - scene.position[axis]) / _safe(da)
        out[i] = np.where((da * facing < 0) & (t > _EPS), t, _INF)
    return out


def _cull(scene: Scene, d: np.ndarray, dd: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the rays that meet the bounding sphere ``(center, radius)`` (all if the camera is inside)."""
    oc = center - scene.position
    oc2 = float(oc @ oc)
    if oc2 <= radius * radius:
        return np.arange(d.shape[1])
    b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
    return np.nonzero((b > 0) & (b * b > dd * (oc2 - radius * radius)))[0]


def _boxes(scene: Scene, d: np.ndarray, dd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hit t ``(Nb, P)`` and entry axis ``(Nb, P)`` of yawed boxes (slab method in box frame)."""
    n, p = len(scene.boxes), d.shape[1]
    ts = np.full((n, p), _INF, dtype=np.float32)
    axes = np.zeros((n, p), dtype=np.int64)
    for i, (cx, cy, cz, hx, hy, hz, yaw) in enumerate(scene.boxes):
        center = np.array([cx, cy, cz], dtype=np.float32)
        idx = _cull(scene, d, dd, center, math.sqrt(hx * hx + hy * hy + hz * hz))
        if idx.size == 0:
            continue
        c, s = math.cos(yaw), math.sin(yaw)
        rel = scene.position - center
        o = (c * rel[0] - s * rel[2], rel[1], s * rel[0] + c * rel[2])
        dx, dy, dz = d[0, idx], d[1, idx], d[2, idx]
        near, far = [], []
        for oa, da, half in ((o[0], c * dx - s * dz, hx), (o[1], dy, hy), (o[2], s * dx + c * dz, hz)):
            inv = 1.0 / _safe(da)
            t1 = (-half - oa) * inv
            t2 = (half - oa) * inv
            near.append(np.minimum(t1, t2))
            far.append(np.maximum(t1, t2))
        tmin = np.maximum(np.maximum(near[0], near[1]), near[2])
        tmax = np.minimum(np.minimum(far[0], far[1]), far[2])
        hit = (tmax >= tmin) & (tmin > _EPS)
        ts[i, idx] = np.where(hit, tmin, _INF)
        axes[i, idx] = _argmax3(near[0], near[1], near[2])
    return ts, axes


def _spheres(scene: Scene, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
    out = np.full((len(scene.spheres), d.shape[1]), _INF, dtype=np.float32)
    for i, (cx, cy, cz, r) in enumerate(scene.spheres):
        oc = scene.position - np.array([cx, cy, cz], dtype=np.float32)
        b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
        disc = b * b - dd * (float(oc @ oc) - r * r)
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / dd
        out[i] = np.where((disc >= 0) & (t > _EPS), t, _INF)
    return out


def _cylinders(scene: Scene, d: np.ndarray, dd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hit t ``(Nc, P)`` of vertical capped cylinders standing on y = 0, and a 'top cap' flag."""
    n, p = len(scene.cylinders), d.shape[1]
    ts = np.full((n, p), _INF, dtype=np.float32)
    caps = np.zeros((n, p), dtype=bool)
    o = scene.position
    for i, (cx, cz, r, h, _unused) in enumerate(scene.cylinders):
        idx = _cull(scene, d, dd, np.array([cx, h / 2, cz], dtype=np.float32), math.sqrt(r * r + h * h / 4))
        if idx.size == 0:
            continue
        dx, dy, dz = d[0, idx], d[1, idx], d[2, idx]
        ox, oz = o[0] - cx, o[2] - cz
        a = _safe(dx * dx + dz * dz)
        b = ox * dx + oz * dz
        disc = b * b - a * (ox * ox + oz * oz - r * r)
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        y = o[1] + t_side * dy
        t_side = np.where((disc >= 0) & (t_side > _EPS) & (y >= 0) & (y <= h), t_side, _INF)
        t_cap = np.full(idx.size, _INF, dtype=np.float32)
        if o[1] > h:
            tc = (h - o[1]) / _safe(dy)
            hx, hz = ox + tc * dx, oz + tc * dz
            t_cap = np.where((tc > _EPS) & (hx * hx + hz * hz <= r * r), tc, _INF).astype(np.float32)
        caps[i, idx] = t_cap < t_side
        ts[i, idx] = np.minimum(t_side, t_cap)
    return ts, caps


def _shadowed(scene: Scene, pts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Whether the light is blocked by an object for the points ``pts[:, idx]`` (bool ``(len(idx),)``).

    Shadow rays start on the surface and go towards the directional light; an object blocks
    them if they enter it at a distance > 1 mm (own faces turned to the light are not blocked;
    faces turned away are unlit by the Lambert term anyway).
    """
    out = np.zeros(idx.size, dtype=bool)
    if idx.size == 0:
        return out
    lx, ly, lz = (float(c) for c in scene.light_dir)
    x, y, z = pts[0, idx], pts[1, idx], pts[2, idx]
    eps = 1e-3

    def candidates(cx: float, cy: float, cz: float, radius: float) -> np.ndarray:
        ox, oy, oz = cx - x, cy - y, cz - z
        b = ox * lx + oy * ly + oz * lz
        return np.nonzero((b > -radius) & (ox * ox + oy * oy + oz * oz - b * b < radius * radius))[0]

    for cx, cy, cz, r in scene.spheres:
        sel = candidates(cx, cy, cz, r)
        if sel.size:
            ox, oy, oz = x[sel] - cx, y[sel] - cy, z[sel] - cz
            b = ox * lx + oy * ly + oz * lz
            disc = b * b - (ox * ox + oy * oy + oz * oz - r * r)
            out[sel] |= (disc >= 0) & (-b - np.sqrt(np.maximum(disc, 0)) > eps)
    for cx, cy, cz, hx, hy, hz, yaw in scene.boxes:
        sel = candidates(cx, cy, cz, math.sqrt(hx * hx + hy * hy + hz * hz))
        if sel.size:
            c, s = math.cos(yaw), math.sin(yaw)
            rx, ry, rz = x[sel] - cx, y[sel] - cy, z[sel] - cz
            near = np.full(sel.size, -np.inf, dtype=np.float32)
            far = np.full(sel.size, np.inf, dtype=np.float32)
            for oa, da, half in ((c * rx - s * rz, c * lx - s * lz, hx), (ry, ly, hy), (s * rx + c * rz, s * lx + c * lz, hz)):
                if abs(da) < 1e-9:
                    inside = np.abs(oa) <= half
                    near = np.where(inside, near, np.inf)
                    continue
                t1, t2 = (-half - oa) / da, (half - oa) / da
                near = np.maximum(near, np.minimum(t1, t2))
                far = np.minimum(far, np.maximum(t1, t2))
            out[sel] |= (far >= near) & (near > eps)
    for cx, cz, r, h, _unused in scene.cylinders:
        sel = candidates(cx, h / 2, cz, math.sqrt(r * r + h * h / 4))
        if sel.size:
            ox, oz = x[sel] - cx, z[sel] - cz
            a = max(lx * lx + lz * lz, 1e-12)
            b = ox * lx + oz * lz
            disc = b * b - a * (ox * ox + oz * oz - r * r)
            t = (-b - np.sqrt(np.maximum(disc, 0))) / a
            yy = y[sel] + t * ly
            out[sel] |= (disc >= 0) & (t > eps) & (yy >= 0) & (yy <= h)
    return out


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Integer lattice point -> pseudo-random value in [0, 1) (uint32 avalanche hash)."""
    h = (ix.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (iy.astype(np.uint32) * np.uint32(0xD8163841))
    h ^= seed
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h.astype(np.float32) * np.float32(1.0 / 4294967296.0)


def _value_noise(u: np.ndarray, v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    a, b = _hash01(iu, iv, seed), _hash01(iu + 1, iv, seed)
    c, e = _hash01(iu, iv + 1, seed), _hash01(iu + 1, iv + 1, seed)
    return (a + (b - a) * fu) * (1 - fv) + (c + (e - c) * fu) * fv


def _pattern(family: np.ndarray, u: np.ndarray, v: np.ndarray, freq: np.ndarray, angle: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Mix weight in [0, 1] between colour a (0) and colour b (1) per pixel."""
    out = np.zeros_like(u)
    su, sv = u * freq, v * freq
    m = family == 1  # checker
    if m.any():
        out[m] = ((np.floor(su[m]) + np.floor(sv[m])) % 2).astype(np.float32)
    m = family == 2  # stripes
    if m.any():
        w = su[m] * np.cos(angle[m]) + sv[m] * np.sin(angle[m])
        out[m] = (np.sin(2 * np.pi * w) > 0).astype(np.float32)
    m = family == 3  # value noise, two octaves
    if m.any():
        s = seed[m]
        out[m] = 0.65 * _value_noise(su[m] * 2, sv[m] * 2, s) + 0.35 * _value_noise(su[m] * 4, sv[m] * 4, s ^ np.uint32(0x9E3779B9))
    return out


def render_scene(scene: Scene, height: int, width: int) -> dict[str, Any]:
    """Ray-cast ``scene`` at ``height x width``.

    Returns:
        ``image`` uint8 ``(H, W, 3)``; ``depth`` float32 ``(H, W)`` metric z-depth in metres (0 on
        sky); ``valid`` bool ``(H, W)`` (False on sky and beyond ``scene.far``); ``seg`` int64
        ``(H, W)`` (:data:`SEG_CLASSES`); ``intrinsics`` float32 ``(3, 3)``.
    """
    d, (fx, fy, cx, cy) = _rays(scene, height, width)
    p = d.shape[1]
    dd = (d * d).sum(axis=0)
    t_planes = _planes(scene, d)
    t_boxes, box_axes = _boxes(scene, d, dd)
    t_spheres = _spheres(scene, d, dd)
    t_cyl, cyl_caps = _cylinders(scene, d, dd)
    t = np.full(p, _INF, dtype=np.float32)
    surface = np.zeros(p, dtype=np.int64)
    index = 0
    for block in (t_planes, t_boxes, t_spheres, t_cyl):
        for row in block:  # running minimum: cheaper than argmin over axis 0
            nearer = row < t
            np.copyto(t, row, where=nearer)
            surface[nearer] = index
            index += 1
    hit = np.isfinite(t) & (t <= scene.far)

    n_pl, n_bx, n_sp = len(scene.planes), len(scene.boxes), len(scene.spheres)
    n_surf = n_pl + n_bx + n_sp + len(scene.cylinders)
    pts = scene.position[:, None] + d * np.where(hit, t, 0)[None]
    # per-surface lookup tables: semantic class and (for planes) the constant normal
    surf_seg = np.empty(n_surf, dtype=np.int64)
    surf_normal = np.zeros((n_surf, 3), dtype=np.float32)
    for i, (axis, _offset, facing, cls) in enumerate(scene.planes):
        surf_seg[i] = cls
        surf_normal[i, axis] = facing
    surf_seg[n_pl : n_pl + n_bx] = _BOX
    surf_seg[n_pl + n_bx : n_pl + n_bx + n_sp] = _SPHERE
    surf_seg[n_pl + n_bx + n_sp :] = _CYLINDER
    seg = np.where(hit, surf_seg[surface], _SKY)
    normal = np.ascontiguousarray(surf_normal[surface].T)
    # objects: only their (usually few) pixels are visited
    obj = np.nonzero(hit & (surface >= n_pl))[0]
    obj_surface = surface[obj]
    for j in range(n_surf - n_pl):
        sel = obj[obj_surface == n_pl + j]
        if sel.size == 0:
            continue
        if j < n_bx:
            yaw = float(scene.boxes[j, 6])
            c, s = math.cos(yaw), math.sin(yaw)
            ax = box_axes[j, sel]
            dl = np.stack([c * d[0, sel] - s * d[2, sel], d[1, sel], s * d[0, sel] + c * d[2, sel]])
            local = np.zeros_like(dl)
            cols = np.arange(sel.size)
            local[ax, cols] = -np.sign(dl[ax, cols])
            normal[0, sel] = c * local[0] + s * local[2]
            normal[1, sel] = local[1]
            normal[2, sel] = -s * local[0] + c * local[2]
        elif j < n_bx + n_sp:
            sph = scene.spheres[j - n_bx]
            normal[:, sel] = (pts[:, sel] - sph[:3, None]) / sph[3]
        else:
            k = j - n_bx - n_sp
            cxz, r = scene.cylinders[k, :2], scene.cylinders[k, 2]
            cap = cyl_caps[k, sel]
            normal[0, sel] = np.where(cap, 0.0, (pts[0, sel] - cxz[0]) / r)
            normal[1, sel] = np.where(cap, 1.0, 0.0)
            normal[2, sel] = np.where(cap, 0.0, (pts[2, sel] - cxz[1]) / r)

    # texture coordinates from the dominant normal axis
    an = np.abs(normal)
    dom = _argmax3(an[0], an[1], an[2])
    u = np.where(dom == 0, pts[2], pts[0])
    v = np.where(dom == 1, pts[2], pts[1])
    mat = scene.materials
    # everything below is evaluated for all pixels in (3, P) layout; sky replaces misses at the end
    weight = _pattern(mat.family[surface], u, v, mat.frequency[surface], mat.angle[surface], mat.noise_seed[surface])
    color_a = mat.color_a.T[:, surface]
    albedo = color_a + (mat.color_b.T[:, surface] - color_a) * weight
    lx, ly, lz = (float(c) for c in scene.light_dir)
    lambert = np.maximum(lx * normal[0] + ly * normal[1] + lz * normal[2], 0.0)
    if scene.shadows and (len(scene.boxes) or len(scene.spheres) or len(scene.cylinders)):
        lit = np.nonzero(hit & (lambert > 0))[0]
        lambert[lit[_shadowed(scene, pts, lit)]] = 0.0
    color = albedo * (scene.ambient + scene.light_intensity * lambert)
    horizon, zenith = scene.sky_horizon[:, None], scene.sky_zenith[:, None]
    if scene.fog > 0:
        keep = np.exp(-scene.fog * np.where(hit, t, 0.0))
        color = color * keep + horizon * (1 - keep)
    # sky: vertical gradient from the horizon colour to the zenith colour
    elev = np.clip(d[1] / np.sqrt(dd), 0.0, 1.0)
    sky = horizon + (zenith - horizon) * elev
    color = np.where(hit, color, sky)

    image = np.ascontiguousarray((np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).T).reshape(height, width, 3)
    depth = np.where(hit, t, 0.0).astype(np.float32).reshape(height, width)
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)
    return {"image": image, "depth": depth, "valid": hit.reshape(height, width), "seg": seg.reshape(height, width), "intrinsics": K}
