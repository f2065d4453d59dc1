"""The shapes of the data that crosses a boundary inside the pipeline (issue 16, item 4).

Each is a ``TypedDict`` because the value travels as JSON: between the two report hops
(topic ``report-routed``), in the Faust tables' changelogs (work orders, respondents' form
states, warnings) and back from ClickHouse when a lost table is put back
(:mod:`pipelines.restore`). The pure steps build them, the agents pass them on, the row
builders read them. Times are integer milliseconds since the epoch (UTC), suffix ``_ms``.

Nothing here does anything: importing it costs nothing and it imports nothing of the project.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Codes(TypedDict):
    """Division codes of every level (``''`` where the code is coarser); a state put back from
    ClickHouse has no village code (the tables keep the region code itself)."""

    province: str
    city: str
    county: str
    township: str
    village: NotRequired[str]


class Names(TypedDict):
    """Division names of every level (``''`` where the code is coarser)."""

    province: str
    city: str
    county: str
    township: str
    village: str


class MaskedPerson(TypedDict):
    """A reporter or respondent after masking (:func:`pipelines.reports.masked_person`):
    ``hash`` is the salted pseudonym that joins one person's events, the rest masked text."""

    hash: str
    name: str
    phone: str
    id_number: str


class CategoryOfReport(TypedDict):
    """The classification a routed report carries (:class:`pipelines.classify.Classification`)."""

    code: str
    major: str
    minor: str
    confidence: float
    evidence: list[str]
    source: str  # hint | text | fallback
    request_type: str  # request_types.csv code
    taxonomy_version: str
    classifier: str  # rules-v2 | model-<version> | hint


class RoutedReport(TypedDict):
    """A validated SUBMIT, masked, classified and routed (:func:`pipelines.reports.work_order`):
    the value of topic ``report-routed`` and the seed of a work order."""

    report_id: str
    event_id: str
    occurred_ms: int
    received_ms: int
    produced_ms: int  # the Kafka record's timestamp
    channel: str
    region_code: str
    codes: Codes
    names: Names
    urban_rural: str
    grid_id: str
    lat: float | None
    lon: float | None
    address: str  # scrubbed
    description: str  # scrubbed
    images: list[str]  # masked URLs
    category: CategoryOfReport
    priority: str  # P1..P4
    emergency: bool
    sla_hours: float
    deadline_ms: int
    department: str
    level: str  # community | street | county
    reporter: MaskedPerson
    partition: int  # of the SUBMIT on topic report
    offset: int


class FormEntry(TypedDict):
    """A validated form submission, masked and enriched (:func:`pipelines.forms.submission`)."""

    submission_id: str
    form_id: str
    form_version: int
    respondent_key: str  # the respondent's pseudonym, or anon-<submission id>
    respondent: MaskedPerson
    region_code: str
    codes: Codes
    names: Names
    urban_rural: str
    channel: str
    answers: dict[str, str]
    abnormal: bool
    flags: list[str]  # the abnormal fields
    submitted_ms: int
    received_ms: int
    partition: int
    offset: int


class FormState(TypedDict):
    """One respondent's state for one form (table ``form-latest``, ``forms.merge``)."""

    latest: FormEntry
    submissions: int
    abnormal_submissions: int
    seen: list[str]  # the last MAX_SEEN submission ids
    revision: int  # the gov.form_submissions row version
    alert: AlertState | None  # the respondent's derived alert, when one was raised


class AlertMessage(TypedDict):
    """One decoded warning message as the warning state keeps it (:mod:`pipelines.alerts`)."""

    alert_id: str
    msg_type: str  # Alert | Update | Cancel
    sender: str
    hazard: str
    hazard_local: str
    level: str  # blue | yellow | orange | red
    region_codes: list[str]  # current codes
    replaced_codes: dict[str, list[str]]  # withdrawn code -> its successors
    unknown_codes: list[str]
    headline: str
    description: str
    instruction: str
    sent_ms: int
    effective_ms: int
    expires_ms: int | None
    source: str  # weather | form | sla | supervision | ...
    received_ms: int


class AlertState(AlertMessage):
    """A warning's state (table ``alert-state``, :func:`pipelines.alerts.apply`): its latest
    message plus what the warning keeps across messages."""

    root_id: str  # the first Alert's id: the warning's identity
    status: str  # active | cancelled
    first_sent_ms: int
    messages: list[str]  # the last MAX_MESSAGES message ids
    revision: int  # the gov.alerts row version
    partition: int
    offset: int


#: a ClickHouse row as inserted: values in the order of the table's column tuple
Row = list[Any]
