"""Ray-cast rooms with exact metric depth: the synthetic stand-in for NYUv2 (`synthetic:depth`).

    camera (NYUv2 Kinect intrinsics, scaled; pitched down, yawed)
      └─► one ray per pixel centre ──► nearest hit among
              floor / ceiling / 3 walls (planes)  +  2–5 spheres and yawed boxes standing on the floor
          ──► depth  = z of the hit in the camera frame (what a Kinect, hence NYUv2, records)
          ──► colour = albedo (world-space tiles, planks, noise) × (ambient + Lambert · falloff · shadow)

Rays are d = ((u − c_x)/f_x, (v − c_y)/f_y, 1) in the camera frame, so the ray
parameter of a hit *is* its depth; every ray leaves forwards through the back
wall, so every pixel is valid, with depths in about 0.9–9.2 m (NYUv2: 0.5–10 m).
Textures live on the surfaces in metres, so the image is not a function of depth.
Hand-written: no library ray-casts analytic scenes into numpy at this size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .world import fractal_noise, jitter_colour, to_uint8, value_noise

# NYUv2's colour camera (Silberman et al. 2012 toolbox, camera_params.m) at 640×480
NYU_INTRINSICS = (518.857901, 519.469611, 325.582449, 253.736166)  # f_x, f_y, c_x, c_y
EPS = 1e-6
SURFACES = ("floor", "ceiling", "left wall", "right wall", "back wall")  # ids 0-4; objects follow


@dataclass
class Primitive:
    kind: str  # "sphere" | "box"
    center: np.ndarray  # world metres
    size: np.ndarray  # sphere: (r,); box: half extents (x, y, z)
    yaw: float = 0.0  # box rotation about the world y axis
    albedo: np.ndarray = field(default_factory=lambda: np.ones(3))


@dataclass
class Room:
    """World frame: camera at the origin, y up, z forward before the camera's yaw/pitch."""

    size: tuple[int, int]  # H × W pixels
    intrinsics: tuple[float, float, float, float]  # f_x, f_y, c_x, c_y in pixels
    rotation: np.ndarray  # camera → world (3×3)
    floor_y: float
    ceiling_y: float
    left_x: float
    right_x: float
    back_z: float
    light: np.ndarray
    objects: list[Primitive]
    planes: list[tuple[np.ndarray, float]] = field(init=False)  # (n, c) with n·X = c, n facing the room

    def __post_init__(self):
        self.planes = [
            (np.array([0.0, 1.0, 0.0]), self.floor_y),
            (np.array([0.0, -1.0, 0.0]), -self.ceiling_y),
            (np.array([1.0, 0.0, 0.0]), self.left_x),
            (np.array([-1.0, 0.0, 0.0]), -self.right_x),
            (np.array([0.0, 0.0, -1.0]), -self.back_z),
        ]

    def camera_rays(self) -> np.ndarray:
        """World directions (H·W×3) of the pixel-centre rays, scaled so that t = camera-frame depth."""
        h, w = self.size
        fx, fy, cx, cy = self.intrinsics
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        # image v grows downwards, world y upwards
        d_cam = np.stack([(u - cx) / fx, -(v - cy) / fy, np.ones_like(u)], -1).reshape(-1, 3)
        return (d_cam @ self.rotation.T).astype(np.float32)  # float32: half the memory traffic


def sample_room(rng: np.random.Generator, size: tuple[int, int]) -> Room:
    h, w = size
    fx, fy, cx, cy = NYU_INTRINSICS
    # scaled to H × W with pixel centres at integers: c' = (c + ½)·scale − ½
    intrinsics = (fx * w / 640, fy * h / 480, (cx + 0.5) * w / 640 - 0.5, (cy + 0.5) * h / 480 - 0.5)
    yaw, pitch = rng.uniform(-0.35, 0.35), rng.uniform(-0.30, 0.02)  # radians; mostly looking down
    cyaw, syaw, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    r_yaw = np.array([[cyaw, 0, syaw], [0, 1, 0], [-syaw, 0, cyaw]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # pitch < 0 looks down
    camera_height = rng.uniform(1.0, 1.6)
    floor_y, ceiling_y = -camera_height, rng.uniform(2.4, 3.0) - camera_height
    half_width = rng.uniform(1.5, 3.0)
    offset = rng.uniform(-0.5, 0.5) * half_width
    left_x, right_x = -half_width + offset, half_width + offset
    back_z = rng.uniform(3.5, 8.5)
    light = np.array(
        [rng.uniform(left_x + 0.3, right_x - 0.3), ceiling_y - 0.2, rng.uniform(0.5, back_z - 0.5)]
    )
    objects = []
    for _ in range(rng.integers(2, 6)):
        x = rng.uniform(left_x + 0.6, right_x - 0.6)
        z = rng.uniform(1.3, back_z - 0.6)
        colour = rng.integers(30, 240, 3) / 255.0
        if rng.random() < 0.5:
            r = rng.uniform(0.15, 0.5)
            objects.append(Primitive("sphere", np.array([x, floor_y + r, z]), np.array([r]), albedo=colour))
        else:
            half = rng.uniform([0.15, 0.1, 0.15], [0.5, 0.6, 0.5])
            objects.append(
                Primitive("box", np.array([x, floor_y + half[1], z]), half, rng.uniform(0, np.pi / 2), colour)
            )
    return Room(
        size, intrinsics, r_yaw @ r_pitch, floor_y, ceiling_y, left_x, right_x, back_z, light, objects
    )


# -- intersections: origins o (3 or N×3) and directions d (N×3) → t (N), inf where missed --------------


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product where either side may be a single vector."""
    if a.ndim == 1 or b.ndim == 1:
        return b @ a if a.ndim == 1 else a @ b
    return np.einsum("ij,ij->i", a, b)


def hit_plane(o: np.ndarray, d: np.ndarray, n: np.ndarray, c: float) -> np.ndarray:
    denom = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (c - _dot(o, n)) / denom
    return np.where((np.abs(denom) > EPS) & (t > EPS), t, np.inf)


def hit_sphere(o: np.ndarray, d: np.ndarray, center: np.ndarray, r: float) -> np.ndarray:
    oc = o - center
    a = np.einsum("ij,ij->i", d, d)
    b = _dot(oc, d)
    c = _dot(oc, oc) - r * r
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = (-b - root) / a, (-b + root) / a
    t = np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))
    return np.where(disc >= 0, t, np.inf)


def _box_frame(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # box → world


def hit_box(o: np.ndarray, d: np.ndarray, box: Primitive) -> tuple[np.ndarray, np.ndarray]:
    """Slab test in the box frame (only for rays through its bounding sphere): t and the world normal."""
    t = np.full(len(d), np.inf)
    normal = np.zeros_like(d)
    near_rays = np.flatnonzero(np.isfinite(hit_sphere(o, d, box.center, float(np.linalg.norm(box.size)))))
    if not near_rays.size:
        return t, normal
    rot = _box_frame(box.yaw)
    ol = (o - box.center) @ rot if o.ndim == 1 else (o[near_rays] - box.center) @ rot
    dl = d[near_rays] @ rot
    dl = np.where(np.abs(dl) < EPS, EPS, dl)
    t1, t2 = (-box.size - ol) / dl, (box.size - ol) / dl
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = near.max(1), far.min(1)
    hit = (t_far >= t_near) & (t_near > EPS)
    rows, axis = np.arange(len(dl)), near.argmax(1)
    normal_l = np.zeros_like(dl)
    normal_l[rows, axis] = -np.sign(dl[rows, axis])
    t[near_rays] = np.where(hit, t_near, np.inf)
    normal[near_rays] = normal_l @ rot.T
    return t, normal


def hit_objects(
    o: np.ndarray, d: np.ndarray, objects: list[Primitive]
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    out = []
    for obj in objects:
        if obj.kind == "sphere":
            out.append((hit_sphere(o, d, obj.center, float(obj.size[0])), None))
        else:
            out.append(hit_box(o, d, obj))
    return out


# -- rendering -----------------------------------------------------------------------------------------


@dataclass
class RoomRender:
    image: np.ndarray  # H×W×3 uint8
    depth: np.ndarray  # H×W float32 metres (camera-frame z)
    surface: np.ndarray  # H×W int8: index into SURFACES, then 5 + object index
    room: Room


def _surface_albedo(
    room: Room, surface: np.ndarray, points: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Per-hit albedo (N×3): world-space textures for the room, flat colours for the objects."""
    albedo = np.zeros_like(points)
    # floor: tiles or planks, with grain noise
    m = surface == 0
    x, _, z = points[m].T
    base = jitter_colour(tuple(rng.integers(60, 200, 3)), rng)
    other = base * rng.uniform(0.55, 0.85)
    if rng.random() < 0.5:
        tile = rng.uniform(0.3, 0.7)
        parity = (np.floor(x / tile) + np.floor(z / tile)) % 2 > 0
    else:
        plank = rng.uniform(0.12, 0.25)
        parity = value_noise(np.floor(x / plank) * 3.7, np.zeros_like(x), rng) > 0.5
    grain = 0.8 + 0.4 * fractal_noise(x * 4, z * 4, rng)
    albedo[m] = np.where(parity[:, None], base, other) * grain[:, None]
    # ceiling: near white
    albedo[surface == 1] = jitter_colour((235, 235, 230), rng, 0.05)
    # walls: one paint with plaster noise, a darker skirting board, a picture on some walls
    paint = jitter_colour(tuple(rng.integers(120, 240, 3)), rng)
    for s, axis in ((2, 2), (3, 2), (4, 0)):
        m = surface == s
        u, v = points[m, axis], points[m, 1]
        wall = paint * (0.85 + 0.3 * fractal_noise(u * 2, v * 2, rng))[:, None]
        wall[v < room.floor_y + 0.12] = paint * 0.45
        if rng.random() < 0.6 and m.any():
            cu, cv = rng.uniform(u.min(), u.max()), rng.uniform(-0.2, 0.6)
            hw, hh = rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.4)
            frame = (np.abs(u - cu) < hw) & (np.abs(v - cv) < hh)
            picture = jitter_colour(tuple(rng.integers(20, 235, 3)), rng)
            wall[frame] = picture * (0.6 + 0.6 * fractal_noise(u[frame] * 6, v[frame] * 6, rng))[:, None]
        albedo[m] = wall
    for k, obj in enumerate(room.objects):
        m = surface == len(SURFACES) + k
        x, y, z = points[m].T
        albedo[m] = obj.albedo * (0.9 + 0.2 * value_noise(x * 8, z * 8 + y * 8, rng))[:, None]
    return albedo


def render_room(room: Room, rng: np.random.Generator) -> RoomRender:
    h, w = room.size
    d = room.camera_rays()
    o = np.zeros(3, dtype=d.dtype)  # the camera centre
    best_t = np.full(len(d), np.inf)
    surface = np.full(len(d), -1)
    normal = np.zeros_like(d)
    for s, (n, c) in enumerate(room.planes):
        t = hit_plane(o, d, n, c)
        closer = t < best_t
        best_t[closer], surface[closer], normal[closer] = t[closer], s, n
    for k, (t, nrm) in enumerate(hit_objects(o, d, room.objects)):
        closer = t < best_t
        best_t[closer], surface[closer] = t[closer], len(SURFACES) + k
        if nrm is None:  # sphere: normal from the centre
            obj = room.objects[k]
            nrm = (d[closer] * t[closer, None] - obj.center) / obj.size[0]
            normal[closer] = nrm
        else:
            normal[closer] = nrm[closer]
    if not np.isfinite(best_t).all():  # every ray must leave through a wall: a broken room is a bug
        raise RuntimeError("synthetic room: a camera ray escaped the room")
    points = d * best_t[:, None]
    # Lambertian shading from a point light, with inverse-square-like falloff and object shadows
    to_light = room.light - points
    dist = np.linalg.norm(to_light, axis=1)
    l_dir = to_light / dist[:, None]
    lambert = np.clip(np.einsum("ij,ij->i", normal, l_dir), 0.0, None)
    falloff = 1.0 / (1.0 + (dist / 3.5) ** 2)
    lit = np.ones(len(d), dtype=bool)
    facing = np.flatnonzero(lambert > 0)  # only lit-facing points can be shadowed
    for t, _ in hit_objects(points[facing] + normal[facing] * 1e-3, l_dir[facing], room.objects):
        lit[facing[t < dist[facing]]] = False
    shading = 0.22 + 1.6 * lambert * falloff * lit
    albedo = _surface_albedo(room, surface, points, rng)
    image = to_uint8((albedo * shading[:, None]).reshape(h, w, 3), rng)
    depth = best_t.reshape(h, w).astype(np.float32)
    return RoomRender(image, depth, surface.reshape(h, w).astype(np.int8), room)
