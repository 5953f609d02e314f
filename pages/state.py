"""The session-state keys the pages share (owned here, one constant each), the settings choices and
the words for each status. Nothing here touches Streamlit."""

from __future__ import annotations

from detector.io.files import AUDIO_SUFFIXES, VIDEO_SUFFIXES

# ---- session-state keys: this module is their only owner -----------------------------------
SAMPLING = "sampling"  # sidebar widget


MODELS = "models"  # sidebar widget


ANALYSES = "analyses"  # dict[key, Analysis], oldest first, at most MAX_KEPT


VIDEOS = "video_bytes"  # dict[key, bytes]: what the player plays (session memory only)


PLAYABLE = "playable_copies"  # dict[key, bytes]: H.264 copies of videos browsers cannot play


CURRENT = "current_analysis_key"


SCORING = "scoring"  # dict[key, ScoringSettings]: each clip keeps its own settings


SELECTED_FACE = "selected_face_id"  # dict[key, face id] opened from the timeline


VIA_NAVIGATION = "via_navigation"  # set by app.py; see page_setup()


GRADCAMS = "gradcams"  # dict[(key, face_id, model)] -> CamResult, for the report


CASE = "case_info"  # CaseInfo entered on the Report page


EVALUATION = "evaluation"  # the last EvaluationResult of uploaded labelled clips


TRUST = "trust_anchors"  # TrustAnchors | None: the analyst's PEM of trusted C2PA signers


TRUST_ERROR = "trust_anchors_error"  # why the last PEM upload was refused


PROVENANCE = "provenance"  # dict[(key, anchors sha256)] -> Provenance read with other anchors


# widget keys
SOURCE = "source"


UPLOAD = "upload"


EXAMPLE = "example"


TIMELINE_CHART = "timeline_chart"


PERSON_SHOWN = "timeline_person"


AGGREGATION = "aggregation"


ORDER = "order"


THRESHOLD = "threshold"


PAPER_ORDER = "paper_order"


EVAL_JSON = "eval_json"


EVAL_REAL = "eval_real"


EVAL_FAKE = "eval_fake"


CAM_PERSON = "cam_person"


CAM_MODEL = "cam_model"


CAM_FRAME = "cam_frame"


CASE_ID_INPUT = "case_id_input"


ANALYST_INPUT = "analyst_input"


NOTES_INPUT = "notes_input"


CASE_FORM = "case_form"


REPORT_FOR = "report_for"  # the analysis key the report's files were last prepared for


TRUST_UPLOAD = "trust_upload"


# Widgets whose values belong to the clip shown: dropped when another clip is shown, so that no
# setting of one clip flows silently into another (weight sliders "w_<model>" too).
CLIP_WIDGETS = (
    TIMELINE_CHART,
    PERSON_SHOWN,
    AGGREGATION,
    ORDER,
    THRESHOLD,
    CAM_PERSON,
    CAM_MODEL,
    CAM_FRAME,
)


WEIGHT_PREFIX = "w_"  # + model name: the lab's weight sliders


EXCLUDE_PREFIX = "exclude_"  # + track id: a person's exclusion choice on the verdict card


CLIP_WIDGET_PREFIXES = (WEIGHT_PREFIX, EXCLUDE_PREFIX)


INCLUDED = "counts"


EXCLUSION_REASONS = (INCLUDED, "not a face", "not relevant")


MAX_KEPT = 5  # analyses kept per session


MAX_VIDEOS_KEPT = 3  # of which this many keep their video for the player


SAMPLING_CHOICES = {
    "1fps": "1 frame per second (as the core paper; default)",
    "even:16": "16 evenly spaced frames (as Notshe, Xiao et al.)",
    "even:40": "40 evenly spaced frames (as Bing, Kim, Petrov)",
    "first:20": "first 20 frames (as Likith P et al.)",
    "all": "every frame (slow)",
}


DEFAULT_SAMPLING = "1fps"


STATUS_TITLES = {
    "no_faces": "No face found: nothing to judge",
    "unreadable": "The file cannot be read as a video",
    "no_video_stream": "The file holds no video",
    "unsupported_codec": "The video codec is not supported",
    "too_short": "The video is too short to judge",
    "too_large": "The video is too large to decode safely",
    "timeout": "Decoding took too long and was stopped",
    "bad_settings": "The analysis settings are invalid",
    "weights_missing": "A model's weights are missing",
    "weights_tampered": "A model's weights failed their integrity check",
}


# Outcomes that do not depend on the file alone: analysing it again may give another answer.
RETRYABLE = {"timeout", "weights_missing", "weights_tampered", "bad_settings"}


Key = tuple[str, str, tuple[str, ...]]  # (sha256, sampling, models)

# What the video uploaders offer (files are still recognised by their bytes, not their names).
UPLOAD_TYPES = [s.lstrip(".") for s in (*VIDEO_SUFFIXES, *AUDIO_SUFFIXES)]
