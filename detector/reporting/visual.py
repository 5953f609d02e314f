"""Pictures shared by the app and the PDF: one colour per person, whole frames with every face box,
and the Grad-CAM colour bar. Pure functions of an analysis (numpy, OpenCV, Pillow, matplotlib).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from detector.types import Analysis, FrameRecord

SCALE_MAX = 8.0
"""Top of Grad-CAM's fixed colour scale, in logit units (see :mod:`detector.scoring.explain`)."""
STANDS_OUT_AT = 1.0
"""A Grad-CAM map whose strongest cell is below this (logit units) shows "nothing stands out"."""
CAM_LAYERS = (
    "Grad-CAM on a CNN's last convolutional layer; on a vision transformer (the CLIP member), on "
    "the patch tokens entering its last block"
)
"""Which layer a map is drawn from, in words (each spec's ``gradcam_layer``), for page, report."""

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), without the
# yellow that does not read on white; person k (track k - 1) gets PERSON_COLOURS[(k - 1) % 7].
PERSON_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")


def person_colour(track_id: int) -> str:
    """The colour of a person (a track) everywhere: timeline, face strips, frames, report."""
    return PERSON_COLOURS[int(track_id) % len(PERSON_COLOURS)]


def person_rgb(track_id: int) -> tuple[int, int, int]:
    h = person_colour(track_id).lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def frame_image(frame: FrameRecord) -> np.ndarray | None:
    """The frame's preview as RGB uint8, or None when the analysis kept no preview."""
    if not frame.preview_jpeg:
        return None
    bgr = cv2.imdecode(np.frombuffer(frame.preview_jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frame_record(analysis: Analysis, frame_index: int) -> FrameRecord:
    """The sampled frame with this index (raises KeyError if it was not sampled)."""
    for fr in analysis.frames:
        if fr.index == frame_index:
            return fr
    raise KeyError(f"frame {frame_index} was not sampled")


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return ImageFont.truetype(str(path), size)


def annotated_frame(
    analysis: Analysis,
    frame_index: int,
    image: np.ndarray | None = None,
    highlight_face_id: int | None = None,
    excluded: frozenset[int] = frozenset(),
) -> np.ndarray | None:
    """The frame's preview with every face box in its person's colour and a "Person k" label.

    ``image`` replaces the preview (e.g. one with a Grad-CAM drawn on it); the highlighted face gets
    a thicker box; excluded people's boxes are dashed. None when there is no preview.
    """
    fr = frame_record(analysis, frame_index)
    base = frame_image(fr) if image is None else image
    if base is None:
        return None
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    scale = fr.preview_scale
    font = _font(max(11, img.width // 50))
    for fid in fr.face_ids:
        face = analysis.face(fid)
        x1, y1, x2, y2 = (c * scale for c in face.box_xyxy)
        colour = person_rgb(face.track_id)
        width = 4 if fid == highlight_face_id else 2
        if face.track_id in excluded:
            _dashed_rect(draw, (x1, y1, x2, y2), colour, width)
        else:
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        label = f"Person {face.track_id + 1}"
        tw, th = draw.textbbox((0, 0), label, font=font)[2:]
        ty = y1 - th - 4 if y1 - th - 4 >= 0 else y2 + 2
        draw.rectangle((x1, ty, x1 + tw + 6, ty + th + 4), fill=colour)
        draw.text((x1 + 3, ty + 1), label, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def _dashed_rect(draw: ImageDraw.ImageDraw, box, colour, width: int, dash: float = 8.0) -> None:
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (
        ((x1, y1), (x2, y1)),
        ((x2, y1), (x2, y2)),
        ((x2, y2), (x1, y2)),
        ((x1, y2), (x1, y1)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min(1.0, (k + 1) / steps)
            draw.line(
                (
                    ax + (bx - ax) * t0,
                    ay + (by - ay) * t0,
                    ax + (bx - ax) * t1,
                    ay + (by - ay) * t1,
                ),
                fill=colour,
                width=width,
            )


@cache
def colour_bar_png(scale_max: float, stands_out_at: float, width_in: float = 4.0) -> bytes:
    """A labelled horizontal colour bar for Grad-CAM maps drawn on the fixed scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    fig, ax = plt.subplots(figsize=(width_in, 0.75))
    fig.colorbar(
        plt.cm.ScalarMappable(norm=Normalize(0, scale_max), cmap="jet"),
        cax=ax,
        orientation="horizontal",
    )
    ax.axvline(stands_out_at, color="white", lw=1.5)
    ax.set_xlabel(
        f"evidence for 'fake' (0 = none; under {stands_out_at:g}: nothing stands out)", fontsize=7
    )
    ax.tick_params(labelsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def framed(image: np.ndarray, colour: tuple[int, int, int], width: int | None = None) -> np.ndarray:
    """``image`` with a border in ``colour`` (a person's colour on their thumbnails)."""
    width = width or max(3, image.shape[0] // 40)
    return cv2.copyMakeBorder(image, *([width] * 4), cv2.BORDER_CONSTANT, value=colour)


def colourise(heatmap: np.ndarray, scale_max: float = SCALE_MAX) -> tuple[np.ndarray, np.ndarray]:
    """RGB colours (jet) and a per-pixel opacity in [0, 1] for an evidence map on the fixed scale.

    Opacity grows with the evidence, so cells without any are left transparent.
    """
    v = np.clip(np.asarray(heatmap, dtype=np.float32) / scale_max, 0.0, 1.0)
    colour = cv2.applyColorMap(np.uint8(255 * v), cv2.COLORMAP_JET)
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB), np.sqrt(v)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.6, scale_max: float = SCALE_MAX
) -> np.ndarray:
    """Blend an evidence map (resized to the image) over an RGB uint8 image on the fixed scale."""
    heat = cv2.resize(heatmap.astype(np.float32), (image.shape[1], image.shape[0]))
    colour, opacity = colourise(heat, scale_max)
    a = (alpha * opacity)[..., None]
    return np.uint8(np.clip((1 - a) * image + a * colour, 0, 255))


def crop_region(box_xyxy, margin: float) -> tuple[int, int, int]:
    """(left, top, side) in frame pixels of the square a face crop was cut from.

    The same geometry as :func:`detector.faces.crop.square_crop` (a test holds them together).
    """
    x1, y1, x2, y2 = box_xyxy
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return round(cx - side / 2.0), round(cy - side / 2.0), max(2, round(side))


def overlay_on_frame(
    frame: np.ndarray,
    scale: float,
    box_xyxy,
    heatmap: np.ndarray,
    margin: float,
    alpha: float = 0.6,
    scale_max: float = SCALE_MAX,
) -> np.ndarray:
    """The evidence map of one crop drawn where the crop was cut from a (downscaled) frame.

    ``scale`` maps frame pixels (the box's coordinates) to ``frame``'s pixels.
    """
    left, top, side = crop_region(box_xyxy, margin)
    left, top, side = round(left * scale), round(top * scale), max(2, round(side * scale))
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    heat = cv2.resize(heatmap.astype(np.float32), (side, side))
    heat = heat[y0 - top : y1 - top, x0 - left : x1 - left]
    out[y0:y1, x0:x1] = overlay_heatmap(out[y0:y1, x0:x1], heat, alpha, scale_max)
    return out


PREVIEW_MAX_SIDE = 640  # px, longest side of the whole-frame preview kept per sampled frame


def frame_preview(image: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> tuple[bytes, float]:
    """A downscaled JPEG of a whole RGB frame, and the scale from frame to preview pixels.

    Full frames are not kept (memory); this preview, about 30-60 kB, lets the app and the report
    show every face box in its frame.
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    return (buf.tobytes(), small.shape[1] / w) if ok else (b"", 1.0)
