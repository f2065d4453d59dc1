-- Issue 15, item 6: analysts read gov.dead_letters, so it holds masked fields only; the
-- original key, value and headers of a bad event go to gov.dead_letter_payloads, which only
-- the writer reads (production: REVOKE in deploy/clickhouse/users.d; embedded endpoint:
-- pipelines.access refuses it to read-only requests). Rows of both tables share their identity
-- (source topic, partition, offset, fingerprint). Rows: pipelines.deadletter (row, payload_row).
CREATE TABLE IF NOT EXISTS {database}.dead_letter_payloads
(
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    fingerprint      String                 COMMENT 'as in dead_letters (migration 0007)',
    key              String                 COMMENT 'original message key (base64)',
    value            String                 COMMENT 'original message value (base64)',
    headers          Map(String, String)    COMMENT 'original header values (base64)',
    dead_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(dead_at)
ORDER BY (source_topic, source_partition, source_offset, fingerprint)
SETTINGS non_replicated_deduplication_window = 10000;

-- Rows written before: what they kept of the key, value and headers moves to the payloads
-- (key as it came, header values base64 as the new rows have them) ...
INSERT INTO {database}.dead_letter_payloads
SELECT source_topic, source_partition, source_offset, fingerprint, key,
       if(startsWith(value, '{'), base64Encode(value), value),
       mapApply((k, v) -> (k, base64Encode(v)), headers), dead_at
FROM {database}.dead_letters;

-- ... and leaves the analysts' table: no key, no headers, no bytes of an undecodable value
-- (the masked record of a decoded one stays).
ALTER TABLE {database}.dead_letters
    UPDATE key = '', headers = map(), value = if(startsWith(value, '{'), value, '')
    WHERE 1
    SETTINGS mutations_sync = 2;

ALTER TABLE {database}.dead_letters
    COMMENT COLUMN key 'message key with phone/ID numbers and names masked (base64)',
    COMMENT COLUMN value 'masked record as JSON; empty when the event did not decode',
    COMMENT COLUMN headers 'header values with phone/ID numbers and names masked';
