"""File forensics beside the face evidence: C2PA content credentials and container metadata.

Two readings of the file itself, separate from the faces:

* **Content credentials** (C2PA, https://c2pa.org/specifications/): a signed manifest embedded in
  the file that says who made it, with what, and what was done to it (actions such as
  ``c2pa.created`` or ``c2pa.edited``, ingredients, a *digital source type* such as IPTC's
  ``trainedAlgorithmicMedia`` for AI-made media). Read with ``c2pa-python`` (c2pa-rs), offline:
  no OCSP, no remote manifests. A valid signature only proves the file is unchanged since a key
  signed it; whether that key belongs to anyone the analyst trusts depends on the trust anchors
  the analyst supplies (none are shipped), so the signer is *trusted*, *untrusted* or *unknown*.
* **Container and stream metadata** read with PyAV: brands, writing application, handler names,
  creation times, device tags, rotation, frame-rate mode, durations, audio.

From both come :class:`Finding` s, each with a severity ("info" or "notable") and one plain
sentence. Nothing here scores or changes the face verdict: provenance is evidence for the
analyst to weigh, and most genuine files carry no credentials at all.

The file is untrusted, so both readings run in a short-lived child process with the decoder's
limits (:mod:`detector.io.isolated.decoder`: memory and CPU caps, no file writes, a wall-clock budget). The
child prints one JSON document of plain facts, read by the parent up to a size cap and rebuilt
here field by field; a crash, hang or malformed manifest ends as a typed state, never a traceback."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import sys
import time
from dataclasses import asdict
from pathlib import Path

from detector.errors import DecodeTimeoutError, DetectorError, VideoReadError, VideoTooLargeError
from detector.io.isolated import spares
from detector.io.isolated.decoder import DecodeLimits, child_env
from detector.io.probe import check_file
from detector.provenance.child import read_facts
from detector.provenance.findings import findings
from detector.provenance.model import (
    C2PA_STATES,
    MAX_ITEMS,
    TRUST_CODES,
    C2paAction,
    C2paIngredient,
    Credentials,
    FileMetadata,
    Finding,
    Provenance,
    StatusCode,
    StreamMetadata,
    TrustAnchors,
    clean_text,
)

_MAX_OUTPUT = 1 << 20  # bytes of JSON the child may send


def inspect_file(
    path: Path,
    name: str | None = None,
    trust: TrustAnchors | None = None,
    limits: DecodeLimits | None = None,
    isolate: bool = True,
) -> Provenance:
    """Read the file's credentials and metadata and derive the findings. Never raises for the
    file's sake: an unreadable or hostile file comes back with a non-ok ``status``.

    ``isolate=False`` reads in this process (trusted files, tests of the parsing itself).
    """
    path = Path(path)
    name = name or path.name
    limits = limits or DecodeLimits()
    anchors = trust.describe() if trust else ""
    anchors_sha = trust.sha256 if trust else ""
    try:
        kind = check_file(path, name, limits.max_pixels)
        job = {
            "path": str(path.resolve()),
            "name": name,
            "kind": kind,
            "anchors": trust.pem.decode("ascii", "replace") if trust else None,
            "max_pixels": limits.max_pixels,
        }
        raw = _run_isolated(job, limits, name) if isolate else read_facts(job)
    except DetectorError as exc:
        return Provenance(
            status=exc.status,
            message=str(exc),
            c2pa=Credentials("unchecked", "the file could not be read"),
            metadata=None,
            findings=(Finding("notable", "unreadable", f"The file could not be read: {exc}"),),
            trust_anchors=anchors,
            trust_anchors_sha256=anchors_sha,
        )
    c2pa = _credentials_from(raw.get("c2pa"), trusted_list=trust is not None)
    metadata = _metadata_from(raw.get("metadata"))
    found = findings(c2pa, metadata)
    status, message = "ok", ""
    if metadata is None:  # the credentials may still have been read
        status = VideoReadError.status
        message = clean_text(raw.get("metadata_error")) or f"{name}: the metadata could not be read"
        found.insert(
            0, Finding("notable", "metadata_unreadable", f"The file could not be read: {message}")
        )
    return Provenance(
        status=status,
        message=message,
        c2pa=c2pa,
        metadata=metadata,
        findings=tuple(found),
        trust_anchors=anchors,
        trust_anchors_sha256=anchors_sha,
    )


def _num(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _items(value) -> list:
    return list(value[:MAX_ITEMS]) if isinstance(value, list) else []


def _pairs(value) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple((clean_text(k, 80), clean_text(v)) for k, v in list(value.items())[:MAX_ITEMS])


def _credentials_from(raw, trusted_list: bool) -> Credentials:
    if not isinstance(raw, dict) or raw.get("state") not in C2PA_STATES:
        return Credentials("unchecked", "the credentials reader sent nothing usable")
    state = raw["state"]
    if state in ("absent", "unchecked") or not isinstance(raw.get("manifest"), dict):
        return Credentials(
            state if state != "present" else "unchecked", clean_text(raw.get("message"))
        )
    m = raw["manifest"]
    results = raw.get("results") if isinstance(raw.get("results"), dict) else {}
    failures = tuple(
        StatusCode(clean_text(e.get("code"), 100), clean_text(e.get("explanation")))
        for e in _items(results.get("failure"))
        if isinstance(e, dict)
    )
    successes = {
        clean_text(e.get("code"), 100)
        for e in _items(results.get("success"))
        if isinstance(e, dict)
    }
    validation_state = clean_text(raw.get("validation_state"), 40)
    integrity_failed = any(f.code not in TRUST_CODES for f in failures)
    if validation_state == "Invalid" or integrity_failed or state == "invalid":
        state = "invalid"
    if not trusted_list:
        trust = "unknown"
    elif validation_state == "Trusted" or "signingCredential.trusted" in successes:
        trust = "trusted"
    else:
        trust = "untrusted"
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    cert = raw.get("certificate") if isinstance(raw.get("certificate"), dict) else {}
    actions = []
    for a in _items(raw.get("actions")):
        if isinstance(a, dict):
            agent = a.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent.get(k, "")) for k in ("name", "version")).strip()
            actions.append(
                C2paAction(
                    clean_text(a.get("action"), 100),
                    clean_text(a.get("when"), 60),
                    clean_text(agent),
                    clean_text(a.get("digitalSourceType")),
                )
            )
    ingredients = tuple(
        C2paIngredient(
            clean_text(i.get("title")),
            clean_text(i.get("format"), 60),
            clean_text(i.get("relationship"), 40),
        )
        for i in _items(m.get("ingredients"))
        if isinstance(i, dict)
    )
    source_types = {a.digital_source_type for a in actions if a.digital_source_type}
    if m.get("digital_source_type"):
        source_types.add(clean_text(m.get("digital_source_type")))
    generator = _generator(m)
    message = {
        "present": "signed, and the file is unchanged since",
        "invalid": "the credentials do not validate",
    }[state]
    return Credentials(
        state=state,
        message=clean_text(raw.get("message")) or message,
        claim_generator=generator,
        title=clean_text(m.get("title")),
        signer=clean_text(sig.get("common_name")) or _dn(cert.get("subject")),
        signer_organization=clean_text(sig.get("issuer")),
        issuer=_dn(cert.get("issuer")),
        certificate_valid=_validity(cert.get("validity")),
        signing_time=clean_text(sig.get("time"), 60),
        validation_state=validation_state,
        trust=trust,
        errors=failures,
        actions=tuple(actions),
        ingredients=ingredients,
        digital_source_types=tuple(sorted(source_types)),
        manifest_count=int(_num(raw.get("manifest_count")) or 1),
    )


def _dn(name) -> str:
    """A distinguished name in words: "Common Name (Organisation)"."""
    if not isinstance(name, dict):
        return ""
    cn, org = clean_text(name.get("CN"), 120), clean_text(name.get("O"), 120)
    return f"{cn} ({org})" if cn and org and cn != org else cn or org


def _validity(validity) -> str:
    if not isinstance(validity, dict):
        return ""
    start, end = clean_text(validity.get("notBefore"), 40), clean_text(validity.get("notAfter"), 40)
    return f"{start} to {end}" if start or end else ""


def _generator(m: dict) -> str:
    infos = m.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        return clean_text(" ".join(str(infos[0].get(k, "")) for k in ("name", "version")).strip())
    return clean_text(m.get("claim_generator"))


def _metadata_from(raw) -> FileMetadata | None:
    if not isinstance(raw, dict):
        return None
    streams = []
    for s in _items(raw.get("streams")):
        if isinstance(s, dict):
            streams.append(
                StreamMetadata(
                    index=int(_num(s.get("index")) or 0),
                    kind=clean_text(s.get("kind"), 20),
                    codec=clean_text(s.get("codec"), 40),
                    handler_name=clean_text(s.get("handler_name")),
                    encoder=clean_text(s.get("encoder")),
                    creation_time=clean_text(s.get("creation_time"), 60),
                    duration_s=_num(s.get("duration_s")),
                    tags=_pairs(s.get("tags")),
                )
            )
    rotation = _num(raw.get("rotation_deg"))
    mode = raw.get("frame_rate_mode")
    return FileMetadata(
        container=clean_text(raw.get("container"), 60),
        major_brand=clean_text(raw.get("major_brand"), 20),
        minor_version=clean_text(raw.get("minor_version"), 20),
        compatible_brands=tuple(clean_text(b, 8) for b in _items(raw.get("compatible_brands"))),
        encoder=clean_text(raw.get("encoder")),
        creation_time=clean_text(raw.get("creation_time"), 60),
        modification_time=clean_text(raw.get("modification_time"), 60),
        device_make=clean_text(raw.get("device_make")),
        device_model=clean_text(raw.get("device_model")),
        device_software=clean_text(raw.get("device_software")),
        rotation_deg=None if rotation is None else int(rotation),
        frame_rate_fps=_num(raw.get("frame_rate_fps")),
        frame_rate_mode=mode if mode in ("constant", "variable") else "unknown",
        container_duration_s=_num(raw.get("container_duration_s")),
        video_packets_duration_s=_num(raw.get("video_packets_duration_s")),
        has_audio=bool(raw.get("has_audio")),
        streams=tuple(streams),
        tags=_pairs(raw.get("tags")),
    )


def reader_command() -> tuple[list[str], dict[str, str]]:
    """The metadata reader child's command and environment."""
    return [sys.executable, "-m", "detector.provenance.child"], child_env()


def prepare_spare() -> None:
    """Start a metadata reader child now for the next file (:mod:`detector.io.isolated.spares`)."""
    spares.prepare("provenance", *reader_command())


def _run_isolated(job: dict, limits: DecodeLimits, name: str) -> dict:
    """Run :func:`read_facts` in ``python -m detector.provenance.child`` under the decoder's limits."""
    proc = spares.start("provenance", *reader_command()).proc
    try:
        with contextlib.suppress(BrokenPipeError):  # a child that died at once: see below
            proc.stdin.write(json.dumps({**job, "limits": asdict(limits)}).encode("utf-8"))
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        out = bytearray()
        deadline = time.monotonic() + limits.total_s
        fd = proc.stdout.fileno()
        while True:
            wait = min(limits.stall_s, deadline - time.monotonic())
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise DecodeTimeoutError(
                    f"{name}: reading the file's metadata took too long; the reader was stopped"
                )
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            out += chunk
            if len(out) > _MAX_OUTPUT:
                raise VideoReadError(f"{name}: the metadata reader sent an oversized answer")
        code = proc.wait(timeout=limits.stall_s)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    try:
        doc = json.loads(out) if out else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if code in (-9, -24):  # SIGKILL (out of memory), SIGXCPU
            raise VideoTooLargeError(f"{name}: the metadata reader ran out of memory or CPU time")
        raise VideoReadError(
            f"{name}: the metadata reader crashed on this file (exit code {code}); it is "
            "probably corrupt or crafted"
        )
    if doc.get("type") == "error":
        status = doc.get("status")
        cls = {c.status: c for c in (VideoReadError, VideoTooLargeError)}.get(
            status, VideoReadError
        )
        raise cls(clean_text(doc.get("message")) or f"{name}: the file could not be read")
    return doc
