-- 分拨纠错: the dispatchers' corrections of the classifier (issue 14, item 3). A DISPATCH may
-- carry corrected_category, a taxonomy v2.1 code (schemas/avro/CONTRACT.md); the report agent
-- records it on the work order (pipelines/workorders.py: correct) and keeps the classifier's
-- own answer in category_code / category_major / category_minor / classifier, so the pair
-- measures the classifier and `govstream classify train --from-clickhouse` learns from it.
-- Defaults describe every order written before: not corrected.
ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS corrected_category LowCardinality(String) DEFAULT ''
        COMMENT 'taxonomy v2.1 code the dispatcher corrected the category to (latest DISPATCH carrying one); empty when never corrected. category_code keeps the classifier''s answer',
    ADD COLUMN IF NOT EXISTS corrected_major LowCardinality(String) DEFAULT ''
        COMMENT 'taxonomy major category name of corrected_category; empty when never corrected',
    ADD COLUMN IF NOT EXISTS corrected_minor LowCardinality(String) DEFAULT ''
        COMMENT 'taxonomy minor category name of corrected_category; empty when never corrected',
    ADD COLUMN IF NOT EXISTS corrected_at Nullable(DateTime64(3, 'Asia/Shanghai')) DEFAULT NULL
        COMMENT 'time of the DISPATCH that corrected the category (Asia/Shanghai); null when never corrected';

-- Every corrected order beside what the classifier said, with the report's text (gov.reports
-- holds it scrubbed of names, phones and ID numbers: pii.scrub_text). A correction to the code
-- the classifier chose (changed = false) is a dispatcher confirming it: a label all the same.
CREATE VIEW IF NOT EXISTS {database}.classification_corrections AS
SELECT w.report_id AS report_id,
       w.corrected_at AS corrected_at,
       w.submitted_at AS submitted_at,
       w.category_code AS original_code,
       w.category_major AS original_major,
       w.category_minor AS original_minor,
       w.corrected_category AS corrected_code,
       w.corrected_major AS corrected_major,
       w.corrected_minor AS corrected_minor,
       toBool(w.corrected_category != w.category_code) AS changed,
       w.classifier AS classifier,
       w.taxonomy_version AS taxonomy_version,
       r.confidence AS confidence,
       w.request_type AS request_type,
       r.description AS description,
       w.channel AS channel,
       w.city AS city,
       w.county AS county,
       w.routed_department AS routed_department,
       w.department AS department
FROM {database}.work_orders AS w FINAL
LEFT JOIN (SELECT report_id, description, confidence FROM {database}.reports FINAL) AS r
    ON r.report_id = w.report_id
WHERE w.corrected_category != '';

ALTER TABLE {database}.classification_corrections MODIFY COMMENT '分拨纠错: every work order whose category a dispatcher corrected, beside the classifier''s answer and the scrubbed report text (what govstream classify train --from-clickhouse learns from)';

ALTER TABLE {database}.classification_corrections
    COMMENT COLUMN report_id 'the work order (report id)',
    COMMENT COLUMN corrected_at 'time of the DISPATCH that corrected the category (Asia/Shanghai)',
    COMMENT COLUMN submitted_at 'time of the SUBMIT (Asia/Shanghai)',
    COMMENT COLUMN original_code 'taxonomy code the classifier chose (gov.work_orders.category_code)',
    COMMENT COLUMN original_major 'taxonomy major category name the classifier chose',
    COMMENT COLUMN original_minor 'taxonomy minor category name the classifier chose',
    COMMENT COLUMN corrected_code 'taxonomy v2.1 code the dispatcher set (the label training learns)',
    COMMENT COLUMN corrected_major 'taxonomy major category name of corrected_code',
    COMMENT COLUMN corrected_minor 'taxonomy minor category name of corrected_code',
    COMMENT COLUMN changed 'corrected_code differs from original_code (false: the dispatcher confirmed the classifier)',
    COMMENT COLUMN classifier 'what chose original_code: hint | rules-<version> | model-<version>',
    COMMENT COLUMN taxonomy_version 'taxonomy version of original_code',
    COMMENT COLUMN confidence 'the classifier''s confidence in original_code (0-1)',
    COMMENT COLUMN request_type 'request type the classifier gave: consult | help | complaint | report | suggestion | praise',
    COMMENT COLUMN description 'the report text as stored in gov.reports (names, phones and ID numbers masked)',
    COMMENT COLUMN channel 'channel the report came in through',
    COMMENT COLUMN city 'city (地级市) name',
    COMMENT COLUMN county 'county (区县) name',
    COMMENT COLUMN routed_department 'department the classifier routed to',
    COMMENT COLUMN department 'department the order is assigned to now (last DISPATCH or TRANSFER)';
