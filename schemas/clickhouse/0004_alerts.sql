-- Warnings: one row per warning (the chain of Alert/Update/Cancel messages sharing a root id),
-- its current state after updates and cancels, with its reach. ReplacingMergeTree keyed by the
-- root id, version = the revision of the warning's state in the worker's Faust table.
-- source: weather (the meteorological bureau), form (abnormal form answers), sla (work orders
-- past their SLA).
CREATE TABLE IF NOT EXISTS {database}.alerts
(
    root_id          String                  COMMENT 'alert_id of the original Alert (references[0])',
    alert_id         String                  COMMENT 'the message that set the current state',
    msg_type         LowCardinality(String)  COMMENT 'Alert | Update | Cancel',
    status           LowCardinality(String)  COMMENT 'active | cancelled',
    source           LowCardinality(String)  COMMENT 'weather | form | sla | other',
    sender           String,
    hazard           LowCardinality(String),
    hazard_name      LowCardinality(String)  COMMENT 'Chinese name, or hazard_local for other',
    level            LowCardinality(String)  COMMENT 'blue < yellow < orange < red',
    severity         LowCardinality(String)  COMMENT 'CAP: Minor | Moderate | Severe | Extreme',
    headline         String,
    description      String,
    instruction      String,
    region_codes     Array(String)           COMMENT 'areas at their own level (2/4/6/9/12 digits)',
    messages         Array(String)           COMMENT 'alert_ids of the messages seen, in arrival order',
    first_sent_at    DateTime64(3, 'Asia/Shanghai'),
    sent_at          DateTime64(3, 'Asia/Shanghai'),
    effective        DateTime64(3, 'Asia/Shanghai'),
    expires          Nullable(DateTime64(3, 'Asia/Shanghai')),
    villages         UInt32                  COMMENT 'villages/communities the area covers',
    population       UInt64                  COMMENT 'their registered population',
    received_at      DateTime64(3, 'Asia/Shanghai'),
    source_partition UInt32,
    source_offset    UInt64,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY root_id
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per (warning, village/community) it reaches or reached, with the current status:
-- active, cancelled, or lifted (an Update no longer covers the village).
CREATE TABLE IF NOT EXISTS {database}.alert_targets
(
    root_id        String,
    alert_id       String,
    village_code   String,
    village        String,
    township_code  String,
    township       String,
    county_code    LowCardinality(String),
    county         LowCardinality(String),
    city_code      LowCardinality(String),
    city           LowCardinality(String),
    province_code  LowCardinality(String),
    urban_rural    LowCardinality(String),
    population     UInt32,
    source         LowCardinality(String),
    hazard         LowCardinality(String),
    hazard_name    LowCardinality(String),
    level          LowCardinality(String),
    severity       LowCardinality(String),
    status         LowCardinality(String)  COMMENT 'active | cancelled | lifted',
    effective      DateTime64(3, 'Asia/Shanghai'),
    expires        Nullable(DateTime64(3, 'Asia/Shanghai')),
    updated_at     DateTime64(3, 'Asia/Shanghai'),
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (root_id, village_code)
SETTINGS non_replicated_deduplication_window = 10000;

-- Warnings in force now: not cancelled, effective, not expired.
CREATE VIEW IF NOT EXISTS {database}.alerts_active AS
SELECT root_id, alert_id, msg_type, source, sender, hazard, hazard_name, level, severity,
       headline, region_codes, first_sent_at, sent_at, effective, expires, villages, population
FROM {database}.alerts FINAL
WHERE status = 'active' AND effective <= now64(3) AND (expires IS NULL OR expires > now64(3));

-- Active warnings by source and level (blue, yellow, orange, red), with their reach.
CREATE VIEW IF NOT EXISTS {database}.alerts_active_by_level AS
SELECT source, level, any(severity) AS severity, count() AS warnings,
       sum(villages) AS villages, sum(population) AS population
FROM {database}.alerts_active
GROUP BY source, level
ORDER BY source, indexOf(['blue', 'yellow', 'orange', 'red'], level);

-- Villages/communities under at least one active warning now.
CREATE VIEW IF NOT EXISTS {database}.alert_villages_reached AS
SELECT village_code, any(village) AS village, any(township) AS township, any(county) AS county,
       any(city) AS city, any(population) AS population, count() AS active_warnings,
       arrayElement(['blue', 'yellow', 'orange', 'red'],
                    max(indexOf(['blue', 'yellow', 'orange', 'red'], level))) AS highest_level,
       groupUniqArray(hazard_name) AS hazards, groupUniqArray(source) AS sources
FROM {database}.alert_targets FINAL
WHERE status = 'active' AND effective <= now64(3) AND (expires IS NULL OR expires > now64(3))
GROUP BY village_code;

-- Reach of the active warnings per county: villages and people under a warning now.
CREATE VIEW IF NOT EXISTS {database}.alert_reach_by_county AS
SELECT county_code, any(county) AS county, any(city) AS city,
       count() AS villages, sum(population) AS population,
       max(active_warnings) AS max_warnings_per_village
FROM
(
    SELECT village_code, any(county_code) AS county_code, any(county) AS county,
           any(city) AS city, any(population) AS population, count() AS active_warnings
    FROM {database}.alert_targets FINAL
    WHERE status = 'active' AND effective <= now64(3) AND (expires IS NULL OR expires > now64(3))
    GROUP BY village_code
)
GROUP BY county_code;
