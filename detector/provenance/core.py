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
here field by field; a crash, hang or malformed manifest ends as a typed state, never a traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.errors import DecodeTimeoutError, DetectorError, VideoReadError, VideoTooLargeError
from detector.io.isolated.decoder import _PACKAGE_ROOT, DecodeLimits, _limit_resources, _python_path
from detector.io.video import check_file

SEVERITIES = ("info", "notable")
C2PA_STATES = ("present", "absent", "invalid", "unchecked")
TRUST_STATES = ("trusted", "untrusted", "unknown")
TRUST_WORDS = {
    "trusted": "trusted: the signer's certificate chains to a trust anchor you provided",
    "untrusted": "untrusted: the signer's certificate does not chain to the trust anchors you "
    "provided",
    "unknown": "unknown: no trust anchors were provided, so the signer cannot be vouched for",
}
C2PA_WORDS = {
    "present": "Content credentials present and intact",
    "absent": "No content credentials",
    "invalid": "Content credentials present but invalid",
    "unchecked": "Content credentials not checked",
}

# Sniffed container kind -> the MIME type c2pa reads it as; other containers have no C2PA binding.
C2PA_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "avi": "video/x-msvideo"}

# IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/) in words.
SOURCE_TYPE_WORDS = {
    "trainedAlgorithmicMedia": "made by a trained AI model (generative AI)",
    "compositeWithTrainedAlgorithmicMedia": "partly made by a trained AI model (a composite)",
    "algorithmicallyEnhanced": "enhanced by an algorithm",
    "algorithmicMedia": "made by an algorithm without training data",
    "compositeSynthetic": "a composite including synthetic elements",
    "composite": "a composite of several sources",
    "digitalCapture": "captured by a digital camera or recorder",
    "digitalArt": "digital art made by a person",
    "virtualRecording": "a recording of a virtual (on-screen) scene",
    "screenCapture": "a screen capture",
    "minorHumanEdits": "captured, with minor edits by a person",
    "humanEdits": "edited by a person",
    "dataDrivenMedia": "made from data (e.g. a chart)",
    "negativeFilm": "a scan of a negative film",
    "positiveFilm": "a scan of a slide",
    "print": "a scan of a print",
}
AI_SOURCE_TYPES = {
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
}
# Actions that change what is seen or heard (c2pa.created, opened, published ... do not).
EDIT_ACTIONS = {
    "c2pa.edited",
    "c2pa.cropped",
    "c2pa.filtered",
    "c2pa.color_adjustments",
    "c2pa.drawing",
    "c2pa.placed",
    "c2pa.removed",
    "c2pa.resized",
    "c2pa.orientation",
    "c2pa.converted",
    "c2pa.transcoded",
    "c2pa.unknown",
}
# Failure codes that are about trust, not integrity: the library still calls the manifest "Valid".
TRUST_CODES = {"signingCredential.untrusted", "signingCredential.trusted"}
GENERIC_WRITERS = ("lavf", "lavc", "ffmpeg", "handbrake", "libav")
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
_MAX_OUTPUT = 1 << 20  # bytes of JSON the child may send
_MAX_TEXT = 300  # characters kept of any string read from the file
_MAX_ITEMS = 100  # actions, ingredients, tags, streams kept
_MAX_PACKETS = 200_000  # video packets whose timestamps are read for the frame-rate mode
_QT_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    """One observation: ``severity`` is "info" or "notable"; ``text`` is one plain sentence."""

    severity: str
    code: str
    text: str


@dataclass(frozen=True)
class C2paAction:
    action: str
    when: str = ""
    software_agent: str = ""
    digital_source_type: str = ""


@dataclass(frozen=True)
class C2paIngredient:
    title: str
    format: str = ""
    relationship: str = ""


@dataclass(frozen=True)
class StatusCode:
    """A C2PA validation status: its code (e.g. ``assertion.bmffHash.mismatch``) and words."""

    code: str
    explanation: str = ""


@dataclass(frozen=True)
class Credentials:
    """The C2PA reading. ``state``: "present" (found and intact), "absent", "invalid" (found but
    it does not validate: the file changed after signing, or the manifest is damaged) or
    "unchecked" (the container has no C2PA binding, or could not be read); ``message`` says why.

    ``signer`` is the signing certificate's subject, ``issuer`` the authority that issued that
    certificate (both as the certificate states them: anyone can write any name into a
    certificate they issue themselves). ``trust`` is "trusted", "untrusted" or "unknown" (no
    trust anchors given); it is only meaningful when credentials were found. ``signing_time`` is
    empty without a time-stamp.
    """

    state: str
    message: str = ""
    claim_generator: str = ""
    title: str = ""
    signer: str = ""
    signer_organization: str = ""
    issuer: str = ""
    certificate_valid: str = ""
    signing_time: str = ""
    validation_state: str = ""
    trust: str = "unknown"
    errors: tuple[StatusCode, ...] = ()
    actions: tuple[C2paAction, ...] = ()
    ingredients: tuple[C2paIngredient, ...] = ()
    digital_source_types: tuple[str, ...] = ()
    manifest_count: int = 0


@dataclass(frozen=True)
class StreamMetadata:
    index: int
    kind: str
    codec: str = ""
    handler_name: str = ""
    encoder: str = ""
    creation_time: str = ""
    duration_s: float | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileMetadata:
    """What the container says about itself. Empty strings and None mean "not stated".

    ``frame_rate_mode`` is "constant", "variable" or "unknown" (from the video packets' time
    stamps); ``video_packets_duration_s`` is where those time stamps really end, to compare with
    the durations the container declares. ``modification_time`` comes from an MP4/MOV ``mvhd``.
    """

    container: str = ""
    major_brand: str = ""
    minor_version: str = ""
    compatible_brands: tuple[str, ...] = ()
    encoder: str = ""
    creation_time: str = ""
    modification_time: str = ""
    device_make: str = ""
    device_model: str = ""
    device_software: str = ""
    rotation_deg: int | None = None
    frame_rate_fps: float | None = None
    frame_rate_mode: str = "unknown"
    container_duration_s: float | None = None
    video_packets_duration_s: float | None = None
    has_audio: bool = False
    streams: tuple[StreamMetadata, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Provenance:
    """The provenance step's record. ``status`` is "ok" or why the file could not be read
    ("unreadable", "timeout", "too_large"); credentials and metadata are then "unchecked" / None.
    ``trust_anchors`` describes the trust list used ("" when none was given)."""

    status: str
    message: str
    c2pa: Credentials
    metadata: FileMetadata | None
    findings: tuple[Finding, ...] = ()
    trust_anchors: str = ""
    trust_anchors_sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TrustAnchors:
    """A PEM bundle of trust anchors the analyst chose (nothing is trusted by default)."""

    pem: bytes
    label: str = "trust anchors"

    @property
    def count(self) -> int:
        return self.pem.count(b"-----BEGIN CERTIFICATE-----")

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.pem).hexdigest()

    def describe(self) -> str:
        return f"{self.label} ({self.count} certificate{'s' if self.count != 1 else ''})"


def load_trust_anchors(path: Path) -> TrustAnchors:
    """Read a PEM file of CA certificates.

    Raises:
        BadSettingsError: missing, unreadable, or with no PEM certificate in it.
    """
    from detector.errors import BadSettingsError

    path = Path(path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise BadSettingsError(f"trust anchors {path}: {exc.strerror or exc}") from None
    return trust_anchors_from_bytes(pem, path.name)


def trust_anchors_from_bytes(pem: bytes, label: str = "trust anchors") -> TrustAnchors:
    """Trust anchors from PEM bytes (an upload); :class:`BadSettingsError` if none is in it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from detector.errors import BadSettingsError

    try:
        if len(pem) > 4 << 20:
            raise ValueError("too large")
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise BadSettingsError(
            f"{label}: no readable PEM certificate found (expected a .pem bundle of CA "
            "certificates)"
        ) from None
    return TrustAnchors(b"".join(c.public_bytes(Encoding.PEM) for c in certs), label)


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
        message = _text(raw.get("metadata_error")) or f"{name}: the metadata could not be read"
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


# ---------------------------------------------------------------- findings


def findings(c2pa: Credentials, meta: FileMetadata | None, now: datetime | None = None) -> list:
    """The findings, notable ones first; pure (``now`` is a parameter for the tests)."""
    now = now or datetime.now(UTC)
    out = _credential_findings(c2pa)
    if meta is not None:
        out += _metadata_findings(meta, now)
    return sorted(out, key=lambda f: f.severity != "notable")


def _credential_findings(c: Credentials) -> list[Finding]:
    out = []
    signer = c.signer or "an unnamed signer"
    by = f"{signer}" + (f", certificate issued by {c.issuer}" if c.issuer else "")
    if c.state == "absent":
        out.append(
            Finding(
                "info",
                "c2pa_absent",
                "The file carries no content credentials (C2PA); most cameras and platforms do "
                "not add them, so their absence says nothing either way.",
            )
        )
    elif c.state == "unchecked":
        out.append(Finding("info", "c2pa_unchecked", f"Content credentials: {c.message}."))
    elif c.state == "invalid":
        codes = ", ".join(e.code for e in c.errors if e.code not in TRUST_CODES) or c.message
        out.append(
            Finding(
                "notable",
                "c2pa_invalid",
                "The file has content credentials that do not validate "
                f"({codes}): it was changed after it was signed, or the credentials are damaged.",
            )
        )
    elif c.trust == "trusted":
        out.append(
            Finding("info", "c2pa_trusted", f"Valid content credentials signed by {by}; trusted.")
        )
    elif c.trust == "untrusted":
        out.append(
            Finding(
                "notable",
                "c2pa_untrusted",
                f"The content credentials have a valid signature by {by}, but this signer is not "
                "among the trust anchors provided: anyone can sign, so who made it is unproven.",
            )
        )
    else:
        out.append(
            Finding(
                "info",
                "c2pa_trust_unknown",
                f"The content credentials have a valid signature by {by}; no trust anchors were "
                "provided, so whether to trust this signer is unknown.",
            )
        )
    if c.state in ("present", "invalid"):
        for t in c.digital_source_types:
            short = t.rstrip("/").rsplit("/", 1)[-1]
            words = SOURCE_TYPE_WORDS.get(short, short)
            if short in AI_SOURCE_TYPES:
                out.append(
                    Finding(
                        "notable",
                        "c2pa_ai_source",
                        f"The file says it was made by AI: its credentials declare the digital "
                        f"source type {short} ({words}).",
                    )
                )
            else:
                out.append(
                    Finding(
                        "info",
                        "c2pa_source_type",
                        f"The credentials declare the digital source type {short} ({words}).",
                    )
                )
        edits = sorted({a.action for a in c.actions if a.action in EDIT_ACTIONS})
        if edits:
            out.append(
                Finding(
                    "notable",
                    "c2pa_edited",
                    f"The credentials record edits after capture or creation: {', '.join(edits)}.",
                )
            )
    return out


def _metadata_findings(m: FileMetadata, now: datetime) -> list[Finding]:
    out = []
    writers = [m.encoder] + [s.encoder for s in m.streams]
    generic = next((w for w in writers if w and w.lower().startswith(GENERIC_WRITERS)), "")
    if generic:
        out.append(
            Finding(
                "notable",
                "generic_encoder",
                f"The file was written by a general-purpose tool ({generic}, FFmpeg's libraries) "
                "rather than a camera: it was re-encoded or re-packaged at least once, which is "
                "common after an upload and not by itself a sign of manipulation.",
            )
        )
    created = _parse_time(m.creation_time)
    modified = _parse_time(m.modification_time)
    if created and created > now + timedelta(days=1):
        out.append(
            Finding(
                "notable",
                "creation_in_future",
                f"The file says it was created on {m.creation_time}, in the future: the date was "
                "set by hand or by a device with a wrong clock.",
            )
        )
    if created and modified and created > modified + timedelta(seconds=1):
        out.append(
            Finding(
                "notable",
                "created_after_modified",
                f"The file says it was created ({m.creation_time}) after it was last modified "
                f"({m.modification_time}): its dates were altered or written inconsistently.",
            )
        )
    durations = [("the container", m.container_duration_s)]
    durations += [(f"the {s.kind} stream #{s.index}", s.duration_s) for s in m.streams]
    durations += [("the video packets", m.video_packets_duration_s)]
    known = [(w, d) for w, d in durations if d is not None and d > 0]
    if len(known) >= 2:
        (w_lo, lo), (w_hi, hi) = min(known, key=lambda x: x[1]), max(known, key=lambda x: x[1])
        if hi - lo > max(0.5, 0.1 * hi):
            out.append(
                Finding(
                    "notable",
                    "durations_disagree",
                    f"Durations disagree: {w_hi} says {hi:.2f} s but {w_lo} {lo:.2f} s; a file "
                    "cut, joined or re-muxed by hand, or a header that was rewritten.",
                )
            )
    if m.frame_rate_mode == "variable":
        out.append(
            Finding(
                "info",
                "variable_frame_rate",
                "The video has a variable frame rate: usual for phone recordings and screen "
                "captures, and also produced by some editing tools.",
            )
        )
    if m.device_make or m.device_model:
        device = " ".join(x for x in (m.device_make, m.device_model) if x)
        soft = f" (software {m.device_software})" if m.device_software else ""
        out.append(Finding("info", "device", f"The file names a recording device: {device}{soft}."))
        if generic:
            out.append(
                Finding(
                    "notable",
                    "device_tags_rewritten",
                    f"The file names a camera ({device}) but was written by {generic}: the "
                    "device tags were carried through a re-encode or re-mux, or added by hand.",
                )
            )
    if not m.has_audio:
        out.append(Finding("info", "no_audio", "The file has no audio track."))
    return out


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# ---------------------------------------------------------------- rebuilding the child's facts


def _text(value, limit: int = _MAX_TEXT) -> str:
    """A printable string of bounded length from anything the file supplied."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    s = "".join(ch if ch.isprintable() else " " for ch in s[: limit * 2]).strip()
    return s[:limit]


def _num(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _items(value) -> list:
    return list(value[:_MAX_ITEMS]) if isinstance(value, list) else []


def _pairs(value) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple((_text(k, 80), _text(v)) for k, v in list(value.items())[:_MAX_ITEMS])


def _credentials_from(raw, trusted_list: bool) -> Credentials:
    if not isinstance(raw, dict) or raw.get("state") not in C2PA_STATES:
        return Credentials("unchecked", "the credentials reader sent nothing usable")
    state = raw["state"]
    if state in ("absent", "unchecked") or not isinstance(raw.get("manifest"), dict):
        return Credentials(state if state != "present" else "unchecked", _text(raw.get("message")))
    m = raw["manifest"]
    results = raw.get("results") if isinstance(raw.get("results"), dict) else {}
    failures = tuple(
        StatusCode(_text(e.get("code"), 100), _text(e.get("explanation")))
        for e in _items(results.get("failure"))
        if isinstance(e, dict)
    )
    successes = {
        _text(e.get("code"), 100) for e in _items(results.get("success")) if isinstance(e, dict)
    }
    validation_state = _text(raw.get("validation_state"), 40)
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
                    _text(a.get("action"), 100),
                    _text(a.get("when"), 60),
                    _text(agent),
                    _text(a.get("digitalSourceType")),
                )
            )
    ingredients = tuple(
        C2paIngredient(
            _text(i.get("title")), _text(i.get("format"), 60), _text(i.get("relationship"), 40)
        )
        for i in _items(m.get("ingredients"))
        if isinstance(i, dict)
    )
    source_types = {a.digital_source_type for a in actions if a.digital_source_type}
    if m.get("digital_source_type"):
        source_types.add(_text(m.get("digital_source_type")))
    generator = _generator(m)
    message = {
        "present": "signed, and the file is unchanged since",
        "invalid": "the credentials do not validate",
    }[state]
    return Credentials(
        state=state,
        message=_text(raw.get("message")) or message,
        claim_generator=generator,
        title=_text(m.get("title")),
        signer=_text(sig.get("common_name")) or _dn(cert.get("subject")),
        signer_organization=_text(sig.get("issuer")),
        issuer=_dn(cert.get("issuer")),
        certificate_valid=_validity(cert.get("validity")),
        signing_time=_text(sig.get("time"), 60),
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
    cn, org = _text(name.get("CN"), 120), _text(name.get("O"), 120)
    return f"{cn} ({org})" if cn and org and cn != org else cn or org


def _validity(validity) -> str:
    if not isinstance(validity, dict):
        return ""
    start, end = _text(validity.get("notBefore"), 40), _text(validity.get("notAfter"), 40)
    return f"{start} to {end}" if start or end else ""


def _generator(m: dict) -> str:
    infos = m.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        return _text(" ".join(str(infos[0].get(k, "")) for k in ("name", "version")).strip())
    return _text(m.get("claim_generator"))


def _metadata_from(raw) -> FileMetadata | None:
    if not isinstance(raw, dict):
        return None
    streams = []
    for s in _items(raw.get("streams")):
        if isinstance(s, dict):
            streams.append(
                StreamMetadata(
                    index=int(_num(s.get("index")) or 0),
                    kind=_text(s.get("kind"), 20),
                    codec=_text(s.get("codec"), 40),
                    handler_name=_text(s.get("handler_name")),
                    encoder=_text(s.get("encoder")),
                    creation_time=_text(s.get("creation_time"), 60),
                    duration_s=_num(s.get("duration_s")),
                    tags=_pairs(s.get("tags")),
                )
            )
    rotation = _num(raw.get("rotation_deg"))
    mode = raw.get("frame_rate_mode")
    return FileMetadata(
        container=_text(raw.get("container"), 60),
        major_brand=_text(raw.get("major_brand"), 20),
        minor_version=_text(raw.get("minor_version"), 20),
        compatible_brands=tuple(_text(b, 8) for b in _items(raw.get("compatible_brands"))),
        encoder=_text(raw.get("encoder")),
        creation_time=_text(raw.get("creation_time"), 60),
        modification_time=_text(raw.get("modification_time"), 60),
        device_make=_text(raw.get("device_make")),
        device_model=_text(raw.get("device_model")),
        device_software=_text(raw.get("device_software")),
        rotation_deg=None if rotation is None else int(rotation),
        frame_rate_fps=_num(raw.get("frame_rate_fps")),
        frame_rate_mode=mode if mode in ("constant", "variable") else "unknown",
        container_duration_s=_num(raw.get("container_duration_s")),
        video_packets_duration_s=_num(raw.get("video_packets_duration_s")),
        has_audio=bool(raw.get("has_audio")),
        streams=tuple(streams),
        tags=_pairs(raw.get("tags")),
    )


def credential_facts(p: Provenance) -> list[tuple[str, str]]:
    """The credentials as (label, value) rows in an analyst's words (app and PDF share them)."""
    c = p.c2pa
    rows = [
        ("Credentials", f"{C2PA_WORDS[c.state]}: {c.message}" if c.message else C2PA_WORDS[c.state])
    ]
    if c.state in ("present", "invalid") and (c.signer or c.issuer or c.claim_generator):
        rows += [
            ("Signer", c.signer + (f" ({c.signer_organization})" if c.signer_organization else "")),
            ("Certificate issuer", c.issuer or "—"),
            (
                "Signer trust",
                TRUST_WORDS[c.trust]
                + ("; but the credentials do not validate" if c.state == "invalid" else ""),
            ),
            ("Trust list", p.trust_anchors or "none provided"),
            ("Made with", c.claim_generator or "—"),
            ("Signing time", c.signing_time or "not time-stamped"),
            ("Validation", _validation_words(c)),
            ("Actions", ", ".join(_action_words(a) for a in c.actions) or "none recorded"),
            (
                "Ingredients",
                "; ".join(f"{i.title} ({i.relationship or 'ingredient'})" for i in c.ingredients)
                or "none recorded",
            ),
            (
                "Source type",
                "; ".join(_source_words(t) for t in c.digital_source_types) or "not declared",
            ),
        ]
    return rows


def _validation_words(c: Credentials) -> str:
    problems = [e for e in c.errors if e.code not in TRUST_CODES]
    if not problems:
        return "the signature and the file's hashes check out"
    return "; ".join(f"{e.code} ({e.explanation})" if e.explanation else e.code for e in problems)


def _action_words(a: C2paAction) -> str:
    extra = [x for x in (a.software_agent, a.when) if x]
    return a.action + (f" ({', '.join(extra)})" if extra else "")


def _source_words(uri: str) -> str:
    short = uri.rstrip("/").rsplit("/", 1)[-1]
    return f"{short} ({SOURCE_TYPE_WORDS[short]})" if short in SOURCE_TYPE_WORDS else short


def metadata_rows(m: FileMetadata) -> list[tuple[str, str]]:
    """The container and stream metadata as (label, value) rows; "—" where nothing is stated."""

    def seconds(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f} s"

    device = " ".join(x for x in (m.device_make, m.device_model) if x)
    rows = [
        ("Container", m.container or "—"),
        (
            "Brands",
            f"{m.major_brand or '—'} (compatible: {', '.join(m.compatible_brands) or '—'})",
        ),
        ("Writing application", m.encoder or "—"),
        ("Created", m.creation_time or "—"),
        ("Modified", m.modification_time or "—"),
        (
            "Device",
            device + (f", software {m.device_software}" if m.device_software else "") or "—",
        ),
        ("Rotation", "—" if m.rotation_deg is None else f"{m.rotation_deg}°"),
        (
            "Frame rate",
            ("—" if m.frame_rate_fps is None else f"{m.frame_rate_fps:.3f} fps, ")
            + m.frame_rate_mode,
        ),
        ("Duration (container)", seconds(m.container_duration_s)),
        ("Duration (video packets)", seconds(m.video_packets_duration_s)),
        ("Audio", "yes" if m.has_audio else "no audio track"),
    ]
    for st in m.streams:
        parts = [st.codec or "?", f"handler {st.handler_name or '—'}", seconds(st.duration_s)]
        if st.encoder:
            parts.append(f"encoder {st.encoder}")
        rows.append((f"Stream #{st.index} ({st.kind})", ", ".join(parts)))
    rows += [(f"Tag {k}", v) for k, v in m.tags]
    return rows


def provenance_to_dict(p: Provenance) -> dict:
    """The JSON form: ``{"status", "message", "c2pa": {"state", ...}, "metadata", "findings",
    "trust_anchors"}``."""
    c2pa = asdict(p.c2pa)
    c2pa["trust_words"] = TRUST_WORDS[p.c2pa.trust]
    meta = asdict(p.metadata) if p.metadata is not None else None
    if meta is not None:
        meta["tags"] = dict(p.metadata.tags)
        for s, stream in zip(meta["streams"], p.metadata.streams, strict=True):
            s["tags"] = dict(stream.tags)
    return {
        "status": p.status,
        "message": p.message,
        "c2pa": c2pa,
        "metadata": meta,
        "findings": [asdict(f) for f in p.findings],
        "trust_anchors": p.trust_anchors or None,
    }


# ---------------------------------------------------------------- the isolated child


def _run_isolated(job: dict, limits: DecodeLimits, name: str) -> dict:
    """Run :func:`read_facts` in ``python -m detector.provenance.core`` under the decoder's limits."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector.provenance.core"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=_PACKAGE_ROOT,
        env={**os.environ, "PYTHONPATH": _python_path(), "MALLOC_ARENA_MAX": "2"},
    )
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
        raise cls(_text(doc.get("message")) or f"{name}: the file could not be read")
    return doc


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
        words = _text(str(exc) or type(exc).__name__, 200)
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
        "actions": actions[:_MAX_ITEMS],
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

    from detector.io.video import _first_frame, _open, _rotation

    with _open(path, name, max_pixels) as container:
        tags = {str(k): str(v) for k, v in dict(container.metadata).items()}
        streams = []
        for s in list(container.streams)[:_MAX_ITEMS]:
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
                first = _first_frame(container, video, name, max_pixels)
                facts["rotation_deg"] = _rotation(first)
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
    return (_QT_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


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
        _limit_resources(limits)
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
