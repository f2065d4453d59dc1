-- Collection forms (收集表): one row per (form, respondent) — the respondent's latest submission
-- (by submitted_at) with how many times they submitted. ReplacingMergeTree keyed by
-- (form_id, respondent_key), version = the revision of the respondent's state in the worker's
-- Faust table, so a resubmission replaces the earlier row and a retry or replay collapses.
-- No partitioning: a resubmission in another month must still replace (FINAL and merges
-- only collapse rows within one partition). Answers are stored masked.
CREATE TABLE IF NOT EXISTS {database}.form_submissions
(
    form_id               LowCardinality(String),
    form_version          UInt16,
    respondent_key        String                  COMMENT 'salted hash of the respondent id, or anon-<submission_id>',
    submission_id         String                  COMMENT 'the latest submission',
    region_code           String                  COMMENT 'community/village (12 digits)',
    province_code         LowCardinality(String),
    city_code             LowCardinality(String),
    county_code           LowCardinality(String),
    township_code         String,
    province              LowCardinality(String),
    city                  LowCardinality(String),
    county                LowCardinality(String),
    township              String,
    village               String,
    urban_rural           LowCardinality(String),
    channel               LowCardinality(String),
    submitted_at          DateTime64(3, 'Asia/Shanghai'),
    received_at           DateTime64(3, 'Asia/Shanghai'),
    answers               Map(String, String)     COMMENT 'question id -> answer (contract encoding, personal data masked)',
    abnormal              Bool                    COMMENT 'the latest answers meet an abnormal rule of the form',
    abnormal_flags        Array(String)           COMMENT 'question ids whose answers are abnormal',
    submissions           UInt32                  COMMENT 'submissions by this respondent so far (resubmissions included)',
    abnormal_submissions  UInt32                  COMMENT 'of which abnormal',
    respondent_name       String                  COMMENT 'masked, e.g. 李**',
    respondent_phone      String                  COMMENT 'masked',
    respondent_id_number  String                  COMMENT 'masked',
    source_partition      UInt32,
    source_offset         UInt64,
    version               UInt64                  COMMENT 'ReplacingMergeTree version: revision of the respondent state'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (form_id, respondent_key)
SETTINGS non_replicated_deduplication_window = 10000;

-- Registered population of every division (the denominator of completion rates), loaded from
-- the division data by pipelines.forms.load_roster (the worker calls it on startup).
CREATE TABLE IF NOT EXISTS {database}.roster
(
    code           String,
    level          LowCardinality(String)  COMMENT 'province | city | county | township | village',
    name           String,
    parent         String,
    province_code  LowCardinality(String),
    city_code      LowCardinality(String),
    county_code    LowCardinality(String),
    township_code  String,
    province       LowCardinality(String),
    city           LowCardinality(String),
    county         LowCardinality(String),
    township       String,
    urban_rural    LowCardinality(String),
    population     UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY code;

-- Completion statistics per form and area, one row per (form, level, area) with level one of
-- community, township, county, city. submissions counts every submission (resubmissions
-- included); respondents counts people once (their latest submission); registered is the
-- area's registered population (gov.roster); completion_rate = respondents / registered;
-- abnormal counts respondents whose latest answers are abnormal; abnormal_submissions counts
-- abnormal submissions. FINAL collapses replaced rows that are not merged yet.
CREATE VIEW IF NOT EXISTS {database}.form_completion AS
SELECT
    s.form_id AS form_id,
    s.level AS level,
    s.code AS code,
    r.name AS name,
    r.township_code AS township_code,
    r.township AS township,
    r.county_code AS county_code,
    r.county AS county,
    r.city_code AS city_code,
    r.city AS city,
    r.province_code AS province_code,
    r.province AS province,
    s.submissions AS submissions,
    s.respondents AS respondents,
    r.population AS registered,
    if(r.population = 0, 0, s.respondents / r.population) AS completion_rate,
    s.abnormal AS abnormal,
    s.abnormal_submissions AS abnormal_submissions
FROM
(
    SELECT form_id, level, code, sum(submissions) AS submissions, count() AS respondents,
           countIf(abnormal) AS abnormal, sum(abnormal_submissions) AS abnormal_submissions
    FROM (SELECT * FROM {database}.form_submissions FINAL)
    ARRAY JOIN ['community', 'township', 'county', 'city'] AS level,
               [region_code, township_code, county_code, city_code] AS code
    GROUP BY form_id, level, code
) AS s
LEFT JOIN (SELECT * FROM {database}.roster FINAL) AS r ON r.code = s.code;

-- The same, one view per level (the columns of form_completion).
CREATE VIEW IF NOT EXISTS {database}.form_completion_by_community AS
SELECT * FROM {database}.form_completion WHERE level = 'community';

CREATE VIEW IF NOT EXISTS {database}.form_completion_by_township AS
SELECT * FROM {database}.form_completion WHERE level = 'township';

CREATE VIEW IF NOT EXISTS {database}.form_completion_by_county AS
SELECT * FROM {database}.form_completion WHERE level = 'county';

CREATE VIEW IF NOT EXISTS {database}.form_completion_by_city AS
SELECT * FROM {database}.form_completion WHERE level = 'city';

-- One row per form: totals over every community that answered.
CREATE VIEW IF NOT EXISTS {database}.form_totals AS
SELECT
    form_id,
    max(form_version) AS latest_version,
    sum(submissions) AS submissions,
    count() AS respondents,
    uniqExact(region_code) AS communities,
    countIf(abnormal) AS abnormal,
    sum(abnormal_submissions) AS abnormal_submissions,
    max(submitted_at) AS last_submitted_at
FROM {database}.form_submissions FINAL
GROUP BY form_id;
