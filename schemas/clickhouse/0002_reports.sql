-- One row per report (work order): classified, routed, personal data masked.
-- ReplacingMergeTree keyed by report_id (region and time are fixed by the SUBMIT event, so the
-- sort key identifies a report); a replayed or retried insert collapses to one row on merge or
-- with FINAL. Partitioned by month, ordered for "by region, by time" analyst queries.
CREATE TABLE IF NOT EXISTS {database}.reports
(
    report_id            String,
    event_id             String,
    occurred_at          DateTime64(3, 'Asia/Shanghai'),
    received_at          DateTime64(3, 'Asia/Shanghai'),
    channel              LowCardinality(String),
    region_code          String,
    province_code        LowCardinality(String),
    city_code            LowCardinality(String),
    county_code          LowCardinality(String),
    township_code        String,
    province             LowCardinality(String),
    city                 LowCardinality(String),
    county               LowCardinality(String),
    township             String,
    village              String,
    urban_rural          LowCardinality(String)  COMMENT 'urban | town | rural (from the division code), or empty',
    grid_id              String,
    lat                  Nullable(Float64),
    lon                  Nullable(Float64),
    address              String,
    description          String,
    images               Array(String),
    category_code        LowCardinality(String),
    category_major       LowCardinality(String),
    category_minor       LowCardinality(String),
    confidence           Float32,
    evidence             Array(String),
    classified_by        LowCardinality(String)  COMMENT 'hint | text | fallback',
    priority             LowCardinality(String),
    emergency            Bool                     COMMENT 'P1: flagged for immediate handling',
    sla_hours            Float32,
    deadline             DateTime64(3, 'Asia/Shanghai'),
    department           LowCardinality(String),
    handling_level       LowCardinality(String)  COMMENT 'community | street | county',
    duplicate_of         String                   COMMENT '并单: report_id of the first work order, or empty',
    reporter_hash        String                   COMMENT 'salted hash of the reporter id, for joins',
    reporter_name        String                   COMMENT 'masked, e.g. 张*',
    reporter_phone       String                   COMMENT 'masked, e.g. 138****1234',
    reporter_id_number   String                   COMMENT 'masked: first 6 + last 4, or empty',
    source_partition     UInt32,
    source_offset        UInt64,
    version              UInt64                   COMMENT 'ReplacingMergeTree version: source offset',
    produced_at          DateTime64(3, 'UTC')     COMMENT 'Kafka record timestamp of the SUBMIT',
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the row reached ClickHouse'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (province_code, city_code, county_code, report_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Handling steps of work orders (ACCEPT, DISPATCH, …), one row per event.
CREATE TABLE IF NOT EXISTS {database}.work_order_events
(
    event_id             String,
    report_id            String,
    action               LowCardinality(String),
    occurred_at          DateTime64(3, 'Asia/Shanghai'),
    received_at          DateTime64(3, 'Asia/Shanghai'),
    region_code          String,
    operator_hash        String,
    operator_name        String                   COMMENT 'masked',
    operator_role        String,
    assigned_department  String,
    note                 String,
    images               Array(String),
    source_partition     UInt32,
    source_offset        UInt64
)
ENGINE = ReplacingMergeTree(source_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (report_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
