-- Classification provenance (issue 14): next to the category code every classified row now
-- records the kind of request (诉求类型: consult | help | complaint | report | suggestion |
-- praise, pipelines/data/request_types.csv), the taxonomy version the code belongs to and the
-- classifier that chose it (hint, rules-<version> or model-<version>). Defaults describe the rows
-- written before this migration (taxonomy v1, the v1 lexicon matcher, no request type), so they
-- and the views over these tables keep reading as before.
ALTER TABLE {database}.reports
    ADD COLUMN IF NOT EXISTS request_type LowCardinality(String) DEFAULT ''
        COMMENT 'consult | help | complaint | report | suggestion | praise; empty before issue 14';

ALTER TABLE {database}.reports
    ADD COLUMN IF NOT EXISTS taxonomy_version LowCardinality(String) DEFAULT '1'
        COMMENT 'version of pipelines/data/taxonomy.csv the category code belongs to';

ALTER TABLE {database}.reports
    ADD COLUMN IF NOT EXISTS classifier LowCardinality(String) DEFAULT 'rules-v1'
        COMMENT 'hint | rules-<version> | model-<version>: what chose the category';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS request_type LowCardinality(String) DEFAULT ''
        COMMENT 'as gov.reports.request_type';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS taxonomy_version LowCardinality(String) DEFAULT '1'
        COMMENT 'as gov.reports.taxonomy_version';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS classifier LowCardinality(String) DEFAULT 'rules-v1'
        COMMENT 'as gov.reports.classifier';
