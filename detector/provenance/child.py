"""The isolated child that reads an untrusted file's C2PA manifest and container metadata (``python -m detector.provenance.child``) and prints plain facts as one JSON document."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from detector.errors import DetectorError, VideoReadError, VideoTooLargeError
from detector.io.isolated.child import limit_resources
from detector.provenance.model import C2PA_MIME, MAX_ITEMS, QT_EPOCH, clean_text

DEVICE_TAGS = {
    "com.apple.quicktime.make": "make",
    "com.apple.quicktime.model": "model",
    "com.apple.quicktime.software": "software",
    "com.android.manufacturer": "make",
    "com.android.model": "model",
    "com.android.version": "software",
    "make": "make",
    "model": "model",
}


# c2pa errors that mean a manifest was found but is damaged (others: the container is the problem)
_DAMAGED_MANIFEST = (
    "Assertion",
    "AssertionNotFound",
    "Decoding",
    "Json",
    "Manifest",
    "Signature",
    "Verify",
)


_MAX_PACKETS = 200_000  # video packets whose timestamps are read for the frame-rate mode


def read_facts(job: dict) -> dict:
    """Plain facts about the file (JSON-able), read in whichever process calls this."""
    path, name, kind = Path(job["path"]), job["name"], job["kind"]
    facts: dict = {"c2pa": _read_c2pa(path, kind, job.get("anchors"))}
    import av

    try:
        facts["metadata"] = _read_metadata(path, name, int(job["max_pixels"]))
    except DetectorError as exc:
        facts["metadata"], facts["metadata_error"] = None, str(exc)
    except (av.FFmpegError, OSError, ValueError) as exc:  # past the opening: a damaged file
        reason = f"{name}: the container could not be read ({type(exc).__name__})"
        facts["metadata"], facts["metadata_error"] = None, reason
    return facts


def _read_c2pa(path: Path, kind: str, anchors: str | None) -> dict:
    mime = C2PA_MIME.get(kind)
    if mime is None:
        return {
            "state": "unchecked",
            "message": "this container format has no standard place for content credentials "
            "(C2PA covers MP4/MOV and AVI among video formats), so none were looked for",
        }
    try:
        import c2pa
    except ImportError:
        return {"state": "unchecked", "message": "c2pa-python is not installed"}
    # Offline: no certificate-status (OCSP) fetches, no remote manifests.
    config: dict = {"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}}
    if anchors:
        config["trust"] = {"user_anchors": anchors}
    try:
        context = c2pa.Context.from_dict(config)
        with open(path, "rb") as fh, c2pa.Reader(mime, fh, context=context) as reader:
            store = json.loads(reader.json())
            certificate = _certificate_info(reader, store.get("active_manifest"))
    except c2pa.C2paError.ManifestNotFound:
        return {"state": "absent", "message": "no C2PA manifest in the file"}
    except c2pa.C2paError as exc:
        words = clean_text(str(exc) or type(exc).__name__, 200)
        damaged = tuple(getattr(c2pa.C2paError, k) for k in _DAMAGED_MANIFEST)
        if isinstance(exc, damaged):  # a manifest was found, but it is broken
            return {"state": "invalid", "message": f"the credentials cannot be read ({words})"}
        # Other, Io, NotSupported ...: the container itself could not be parsed for a manifest
        return {"state": "unchecked", "message": f"the file could not be parsed ({words})"}
    except (OSError, ValueError) as exc:
        return {"state": "unchecked", "message": f"the file could not be read ({exc!s:.200})"}
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    active = manifests.get(store.get("active_manifest"))
    if not isinstance(active, dict):
        return {"state": "invalid", "message": "a manifest store without an active manifest"}
    actions = []
    for a in active.get("assertions") or []:
        if isinstance(a, dict) and str(a.get("label", "")).startswith("c2pa.actions"):
            data = a.get("data") if isinstance(a.get("data"), dict) else {}
            actions += [x for x in data.get("actions") or [] if isinstance(x, dict)]
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    return {
        "state": "present",
        "manifest": {k: v for k, v in active.items() if k != "assertions"},
        "actions": actions[:MAX_ITEMS],
        "results": results,
        "validation_state": store.get("validation_state"),
        "manifest_count": len(manifests),
        "certificate": certificate,
    }


def _certificate_info(reader, label) -> dict:
    """The active manifest's signing certificate (subject, issuer, validity) from the crJSON view:
    the plain JSON's ``signature_info.issuer`` is the signer's own organisation, not the CA."""
    import c2pa

    try:
        doc = json.loads(reader.crjson())
    except (c2pa.C2paError, ValueError):
        return {}
    for m in doc.get("manifests") or []:
        if isinstance(m, dict) and m.get("label") == label:
            sig = m.get("signature") if isinstance(m.get("signature"), dict) else {}
            info = sig.get("certificateInfo")
            return info if isinstance(info, dict) else {}
    return {}


def _read_metadata(path: Path, name: str, max_pixels: int) -> dict:
    import av

    from detector.io.probe import first_frame, open_container, rotation_of

    with open_container(path, name, max_pixels) as container:
        tags = {str(k): str(v) for k, v in dict(container.metadata).items()}
        streams = []
        for s in list(container.streams)[:MAX_ITEMS]:
            meta = {str(k): str(v) for k, v in dict(s.metadata).items()}
            duration = float(s.duration * s.time_base) if s.duration and s.time_base else None
            ctx = getattr(s, "codec_context", None)
            streams.append(
                {
                    "index": s.index,
                    "kind": s.type,
                    "codec": getattr(ctx, "name", "") or "",
                    "handler_name": meta.pop("handler_name", ""),
                    "encoder": meta.pop("encoder", ""),
                    "creation_time": meta.pop("creation_time", ""),
                    "duration_s": duration,
                    "tags": meta,
                }
            )
        device = {}
        for key, value in tags.items():
            role = DEVICE_TAGS.get(key.lower())
            if role and role not in device:
                device[role] = value
        brands = tags.pop("compatible_brands", "")
        facts = {
            "container": container.format.name,
            "major_brand": tags.pop("major_brand", ""),
            "minor_version": tags.pop("minor_version", ""),
            "compatible_brands": [brands[i : i + 4] for i in range(0, len(brands), 4)],
            "encoder": tags.pop("encoder", ""),
            "creation_time": tags.pop("creation_time", ""),
            "modification_time": _mvhd_modification_time(path),
            "device_make": device.get("make", ""),
            "device_model": device.get("model", ""),
            "device_software": device.get("software", ""),
            "container_duration_s": container.duration / av.time_base
            if container.duration
            else None,
            "has_audio": bool(container.streams.audio),
            "streams": streams,
            "tags": tags,
        }
        if container.streams.video:
            video = container.streams.video[0]
            rate = video.average_rate or video.guessed_rate
            facts["frame_rate_fps"] = float(rate) if rate else None
            facts.update(_packet_timing(container, video))
            # Rotation is on decoded frames; a frame beyond the pixel budget is not decoded.
            with contextlib.suppress(VideoReadError, VideoTooLargeError, av.FFmpegError):
                container.seek(0)
                first = first_frame(container, video, name, max_pixels)
                facts["rotation_deg"] = rotation_of(first)
    return facts


def _packet_timing(container, video) -> dict:
    """Frame-rate mode and where the video really ends, from packet time stamps (no decoding)."""
    import av

    times = []
    try:
        for packet in container.demux(video):
            if packet.pts is not None and packet.size:
                times.append(packet.pts)
            if len(times) >= _MAX_PACKETS:
                break
    except av.FFmpegError:  # a damaged tail: judge from what was read before it
        pass
    times.sort()
    deltas = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    facts: dict = {"frame_rate_mode": "unknown"}
    if not deltas or not video.time_base:
        return facts
    median = deltas[len(deltas) // 2]
    if len(deltas) >= 2:  # a rate needs three frames
        irregular = sum(abs(d - median) > max(1, 0.05 * median) for d in deltas)
        facts["frame_rate_mode"] = "variable" if irregular > 0.05 * len(deltas) else "constant"
    if len(times) < _MAX_PACKETS:  # the whole stream was read: this is where it really ends
        facts["video_packets_duration_s"] = float((times[-1] - times[0] + median) * video.time_base)
    return facts


def _mvhd_modification_time(path: Path) -> str:
    """The ``mvhd`` modification time of an MP4/MOV (ISO 8601, UTC), or "" (bounded box walk)."""
    try:
        with open(path, "rb") as fh:
            moov = _find_box(fh, b"moov", 0, os.fstat(fh.fileno()).st_size)
            mvhd = _find_box(fh, b"mvhd", *moov) if moov else None
            if not mvhd:
                return ""
            fh.seek(mvhd[0])
            body = fh.read(20)
    except OSError:
        return ""
    if len(body) < 12:
        return ""
    version = body[0]
    if version == 1 and len(body) >= 20:
        seconds = int.from_bytes(body[12:20], "big")
    else:
        seconds = int.from_bytes(body[8:12], "big")
    if not seconds or seconds > 1 << 40:
        return ""
    return (QT_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _find_box(fh, kind: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(body start, body end) of the first box of ``kind`` between ``start`` and ``end``."""
    pos = start
    for _ in range(10_000):
        if pos + 8 > end:
            return None
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            return None
        size, box = int.from_bytes(header[:4], "big"), header[4:8]
        body = pos + 8
        if size == 1 and len(header) == 16:
            size, body = int.from_bytes(header[8:16], "big"), pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return None
        if box == kind:
            return body, pos + size
        pos += size
    return None


def _child_main() -> int:
    """Read the job on stdin, apply the limits, print the facts (or an error) as JSON."""
    job = json.loads(sys.stdin.buffer.read(1 << 23))
    limits = job["limits"]
    try:
        limit_resources(limits)
        doc = read_facts(job)
    except DetectorError as exc:
        doc = {"type": "error", "status": exc.status, "message": str(exc)}
    except MemoryError:
        doc = {
            "type": "error",
            "status": VideoTooLargeError.status,
            "message": f"{job['name']}: reading the metadata needed more memory than allowed",
        }
    except Exception as exc:  # a reader failure on this file; say what kind
        doc = {
            "type": "error",
            "status": VideoReadError.status,
            "message": f"{job['name']}: the metadata reader failed on this file "
            f"({type(exc).__name__})",
        }
    sys.stdout.write(json.dumps(doc, default=str))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
