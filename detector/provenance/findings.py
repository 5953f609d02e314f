"""From credentials and metadata to findings (severity + one plain sentence) and the rows the app and the PDF show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detector.provenance.model import (
    C2PA_WORDS,
    TRUST_CODES,
    TRUST_WORDS,
    C2paAction,
    Credentials,
    FileMetadata,
    Finding,
    Provenance,
    parse_time,
)

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


GENERIC_WRITERS = ("lavf", "lavc", "ffmpeg", "handbrake", "libav")


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
    created = parse_time(m.creation_time)
    modified = parse_time(m.modification_time)
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
