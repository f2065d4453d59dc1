-- Events that could not be decoded or failed validation: nothing is dropped silently.
-- One row per bad event. The dead-letter *topic* keeps the original key, value and headers;
-- this table never holds raw personal data: an event that decoded is stored as its masked
-- record (JSON), one that did not as its bytes (base64).
CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    reason           LowCardinality(String)  COMMENT 'stable reason code, e.g. unknown_region',
    message          String                  COMMENT 'for people: what was wrong',
    event_id         String                  COMMENT 'when the event decoded far enough',
    key              String                  COMMENT 'original message key (base64)',
    value            String                  COMMENT 'masked record as JSON, or base64 bytes when undecodable',
    value_size       UInt32,
    headers          Map(String, String),
    received_at      DateTime64(3, 'UTC'),
    dead_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(dead_at)
ORDER BY (source_topic, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 10000;
