-- Work-order supervision (督办): the current state of every work order, written by the report
-- agent from its `work-orders` Faust table on the SUBMIT, on every handling step and on every
-- SLA escalation. ReplacingMergeTree keyed by report_id, version = the state's revision in the
-- table, so the latest state wins and a repeated insert collapses. SLA alerts (source sla) go
-- to gov.alerts (0004). Steps themselves stay in gov.work_order_events (0002).
CREATE TABLE IF NOT EXISTS {database}.work_orders
(
    report_id          String,
    state              LowCardinality(String)  COMMENT 'submitted | accepted | dispatched | resolved | verified | closed | reopened | cancelled',
    region_code        String,
    province_code      LowCardinality(String),
    city_code          LowCardinality(String),
    county_code        LowCardinality(String),
    township_code      String,
    city               LowCardinality(String),
    county             LowCardinality(String),
    township           String,
    village            String,
    channel            LowCardinality(String),
    category_code      LowCardinality(String),
    category_major     LowCardinality(String),
    category_minor     LowCardinality(String),
    priority           LowCardinality(String),
    sla_hours          Float32,
    routed_department  LowCardinality(String)  COMMENT 'department the classifier routed to',
    department         LowCardinality(String)  COMMENT 'assigned by the last DISPATCH, else routed',
    first_level        LowCardinality(String)  COMMENT 'handling level before escalations',
    level              LowCardinality(String)  COMMENT 'community | street | county, after escalations',
    submitted_at       DateTime64(3, 'Asia/Shanghai'),
    first_deadline     DateTime64(3, 'Asia/Shanghai') COMMENT 'submitted_at + SLA: on time means resolved by then',
    deadline           DateTime64(3, 'Asia/Shanghai') COMMENT 'current deadline (escalation + SLA after a breach)',
    accepted_at        Nullable(DateTime64(3, 'Asia/Shanghai')),
    dispatched_at      Nullable(DateTime64(3, 'Asia/Shanghai')),
    resolved_at        Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'null again after a REOPEN',
    verified_at        Nullable(DateTime64(3, 'Asia/Shanghai')),
    closed_at          Nullable(DateTime64(3, 'Asia/Shanghai')),
    cancelled_at       Nullable(DateTime64(3, 'Asia/Shanghai')),
    on_time            Nullable(Bool)          COMMENT 'resolved_at <= first_deadline; null until resolved',
    reopens            UInt16,
    escalations        UInt16                  COMMENT 'SLA breaches escalated (one per breach)',
    pending_steps      UInt16                  COMMENT 'steps received ahead of a missing one',
    last_action        LowCardinality(String),
    last_step_at       DateTime64(3, 'Asia/Shanghai'),
    updated_at         DateTime64(3, 'Asia/Shanghai') COMMENT 'when the worker changed the state',
    version            UInt64,
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY report_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Every work order now (duplicates merged by 并单 left out: they are handled as their first
-- order), with what the analyst views count.
CREATE VIEW IF NOT EXISTS {database}.work_orders_now AS
SELECT *,
       toDate(submitted_at) AS day,
       state NOT IN ('closed', 'cancelled') AS is_open,
       state IN ('submitted', 'accepted', 'reopened', 'dispatched') AND deadline < now64(3) AS is_overdue,
       if(resolved_at IS NULL, NULL,
          dateDiff('millisecond', submitted_at, assumeNotNull(resolved_at)) / 3600000.0) AS resolution_h
FROM {database}.work_orders FINAL
WHERE report_id NOT IN (SELECT report_id FROM {database}.reports FINAL WHERE duplicate_of != '');

-- Every measure once, over four groupings of work_orders_now: per department, per category,
-- per county (all days), and per day × department × category × county (dimension 'daily').
-- Keys a grouping does not use are '' (day: NULL). The views below pick one grouping each.
CREATE VIEW IF NOT EXISTS {database}.work_order_stats AS
SELECT g.1 AS dimension, g.2 AS day, g.3 AS department, g.4 AS category_code,
       g.5 AS county_code,
       any(category_major) AS category_major, any(category_minor) AS category_minor,
       any(county) AS county, any(city) AS city,
       count() AS orders, countIf(is_open) AS open, countIf(is_overdue) AS overdue,
       countIf(state = 'closed') AS closed, countIf(state = 'cancelled') AS cancelled,
       countIf(resolved_at IS NOT NULL) AS resolved, countIf(on_time = true) AS on_time_orders,
       if(resolved = 0, NULL, on_time_orders / resolved) AS on_time_rate,
       quantileExactInclusiveIf(0.5)(resolution_h, resolved_at IS NOT NULL) AS median_resolution_h,
       quantileExactInclusiveIf(0.9)(resolution_h, resolved_at IS NOT NULL) AS p90_resolution_h,
       countIf(escalations > 0) AS escalated, sum(escalations) AS escalations_total
FROM
(
    SELECT *,
           arrayJoin([
               ('department', NULL, department, '', ''),
               ('category', NULL, '', category_code, ''),
               ('county', NULL, '', '', county_code),
               ('daily', toNullable(day), department, category_code, county_code)
           ]) AS g
    FROM {database}.work_orders_now
)
GROUP BY g;

-- On-time rate, median and p90 resolution time (hours), open/overdue counts, per day (of
-- submission), department, category and county.
CREATE VIEW IF NOT EXISTS {database}.work_order_daily AS
SELECT assumeNotNull(day) AS day, * EXCEPT (dimension, day, city)
FROM {database}.work_order_stats WHERE dimension = 'daily';

-- The same measures over all days, per department.
CREATE VIEW IF NOT EXISTS {database}.work_order_by_department AS
SELECT * EXCEPT (dimension, day, category_code, category_major, category_minor, county_code,
                 county, city)
FROM {database}.work_order_stats WHERE dimension = 'department';

-- Per category.
CREATE VIEW IF NOT EXISTS {database}.work_order_by_category AS
SELECT * EXCEPT (dimension, day, department, county_code, county, city)
FROM {database}.work_order_stats WHERE dimension = 'category';

-- Per county.
CREATE VIEW IF NOT EXISTS {database}.work_order_by_county AS
SELECT * EXCEPT (dimension, day, department, category_code, category_major, category_minor)
FROM {database}.work_order_stats WHERE dimension = 'county';
