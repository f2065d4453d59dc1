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
    replaced_codes: NotRequired[dict[str, list[str]]]  # withdrawn code -> its successors
    unknown_codes: NotRequired[list[str]]  # both absent from states kept before migration 0006
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


class Step(TypedDict):
    """A decoded, validated handling step (:func:`pipelines.workorders.step_of`), as buffered
    in a work order's ``pending`` while an earlier step is missing."""

    event_id: str
    report_id: str
    action: str  # ACCEPT, DISPATCH, RESOLVE, VERIFY, CLOSE, REOPEN, CANCEL, TRANSFER, REVISIT
    occurred_ms: int
    received_ms: int
    assigned_department: str  # scrubbed
    satisfaction: str | None  # REVISIT: satisfied, basically_satisfied, dissatisfied, unreachable
    resident_solved: bool | None
    # DISPATCH: the dispatcher's taxonomy code; absent on steps buffered before issue 14's item 3
    corrected_category: NotRequired[str | None]
    partition: int
    offset: int
    key: str | None  # the original message, base64, only while buffered
    value: str | None


class Supervised(TypedDict):
    """A 督办 warning an order raised: its alert state and the order's last step then."""

    alert: AlertState
    last_ms: int


class WorkOrder(TypedDict):
    """A work order's state (table ``work-orders``, :mod:`pipelines.workorders`): the routed
    SUBMIT's place, category and routing, the steps taken and the closed loop (issue 19).
    A state kept before issue 14 lacks the classification fields (they are ``NotRequired``;
    the row builder reads them with defaults) and one kept before issue 19 the closed-loop
    ones, which :func:`pipelines.workorders.upgraded` fills."""

    report_id: str
    state: str  # SUBMITTED | ACCEPTED | … | CLOSED | CANCELLED | REOPENED
    region_code: str
    province_code: str
    city_code: str
    county_code: str
    township_code: str
    city: str
    county: str
    township: str
    village: str
    channel: str
    category_code: str
    category_major: str
    category_minor: str
    request_type: NotRequired[str]
    taxonomy_version: NotRequired[str]
    classifier: NotRequired[str]
    priority: str
    sla_hours: float
    routed_department: str
    department: str
    first_level: str
    level: str
    submitted_ms: int
    first_deadline_ms: int
    deadline_ms: int
    accepted_ms: int | None
    dispatched_ms: int | None
    resolved_ms: int | None
    verified_ms: int | None
    closed_ms: int | None
    cancelled_ms: int | None
    on_time: bool | None
    reopens: int
    escalations: int
    breach: int
    last_action: str
    last_ms: int
    events: list[str]  # event ids applied, SUBMIT first
    pending: list[Step]
    alert: AlertState | None  # the open SLA alert
    revision: int  # the gov.work_orders row version
    updated_ms: int
    partition: int
    # the closed loop (issue 19)
    sign_deadline_ms: int
    signed_on_time: bool | None
    responded_ms: int | None
    transfers: int
    revisits: int
    revisited_ms: int | None
    satisfaction: str
    resident_solved: bool | None
    dissatisfied_streak: int
    problem: bool
    problem_ms: int | None
    warnings: list[str]  # 督办 conditions raised, once each
    supervision: dict[str, Supervised]  # condition -> its warning
    repeat_of: str
    # the dispatcher's correction (issue 14, item 3; workorders.correct): '' / None when none
    corrected_category: str
    corrected_major: str
    corrected_minor: str
    corrected_ms: int | None


class Complaint(TypedDict):
    """What the repeat rule (重复诉求) keeps of a routed report (``workorders.complaint_of``)."""

    report_id: str
    person: str  # the reporter's salted hash; '' when anonymous
    category: str
    occurred_ms: int


#: a ClickHouse row as inserted: values in the order of the table's column tuple
Row = list[Any]
