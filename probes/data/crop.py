"""Top-down person crops: the box → crop affine map used by ViTPose / mmpose.

The GT box [x, y, w, h] is centred, expanded to the head's aspect ratio
(W/H of the crop) and padded by 1.25, exactly as mmpose's `_xywh2cs`
(HRNet, Xiao et al. 2018; ViTPose, Xu et al. 2022). The map follows
Unbiased Data Processing (UDP, Huang et al. 2020), which ViTPose's
configs use: the padded box of size s maps onto pixel centres 0..W-1,

    x_crop = (x - (c_x - s_w / 2)) * (W - 1) / s_w        (same for y with H)

and its inverse. Coordinates are pixel-centre based (pixel i has its centre
at i), as cv2.warpAffine / COCO keypoints use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import affine_transform

BOX_PADDING = 1.25  # mmpose / ViTPose `padding` of the GT box


@dataclass(frozen=True)
class CropTransform:
    center: tuple[float, float]  # (x, y) in image pixels
    size: tuple[float, float]  # (w, h) image pixels covered by the crop (padded, aspect-expanded)
    crop_size: tuple[int, int]  # (H, W) of the crop in pixels

    @classmethod
    def from_box(
        cls,
        box: tuple[float, float, float, float] | list[float],
        crop_size: tuple[int, int],
        padding: float = BOX_PADDING,
    ) -> CropTransform:
        x, y, w, h = (float(v) for v in box)
        crop_h, crop_w = crop_size
        aspect = crop_w / crop_h
        if w > aspect * h:
            h = w / aspect
        elif w < aspect * h:
            w = h * aspect
        center = (float(box[0]) + 0.5 * float(box[2]), float(box[1]) + 0.5 * float(box[3]))
        return cls(center=center, size=(w * padding, h * padding), crop_size=(int(crop_h), int(crop_w)))

    # (crop pixels per image pixel) along x and y
    @property
    def scale(self) -> np.ndarray:
        crop_h, crop_w = self.crop_size
        return np.array([(crop_w - 1) / self.size[0], (crop_h - 1) / self.size[1]], dtype=np.float64)

    @property
    def origin(self) -> np.ndarray:
        """Image coordinates of crop pixel (0, 0)."""
        return np.array([self.center[0] - 0.5 * self.size[0], self.center[1] - 0.5 * self.size[1]])

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Image → crop coordinates for an array whose last axis is (x, y)."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - self.origin) * self.scale

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Crop → image coordinates for an array whose last axis is (x, y)."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy / self.scale + self.origin

    def warp(self, image: Image.Image) -> Image.Image:
        """The crop (W×H, bilinear, black outside the image), as cv2.warpAffine / HF's ViTPose processor."""
        crop_h, crop_w = self.crop_size
        sx, sy = 1.0 / self.scale  # image pixels per crop pixel
        ox, oy = self.origin
        # scipy maps output index (row, col) to input index matrix·(row, col) + offset; computed in
        # float and rounded once (PIL's fixed-point bilinear truncates, biasing pixels by -0.5).
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        channels = [
            affine_transform(
                pixels[..., c], np.diag([sy, sx]), offset=(oy, ox), output_shape=(crop_h, crop_w), order=1
            )
            for c in range(3)
        ]
        return Image.fromarray(np.rint(np.stack(channels, -1)).clip(0, 255).astype(np.uint8), "RGB")

    def to_dict(self) -> dict:
        return {"center": list(self.center), "size": list(self.size), "crop_size": list(self.crop_size)}
