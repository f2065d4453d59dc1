-- A dead letter's identity comes from the event, not from Kafka coordinates alone: after a
-- broker's offsets start again (the embedded broker restarted, a topic recreated on Kafka), a
-- new bad event at an offset already used is another row, not a replacement of the old one.
-- fingerprint = hex SHA-256 prefix of (key, value, record timestamp) — see
-- pipelines.deadletter.fingerprint; a replay of the same record has the same fingerprint and
-- still collapses. Rows written before this migration keep an empty fingerprint.
ALTER TABLE {database}.dead_letters
    ADD COLUMN IF NOT EXISTS fingerprint String
        COMMENT 'hex SHA-256 prefix of the record''s key, value and timestamp',
    MODIFY ORDER BY (source_topic, source_partition, source_offset, fingerprint);
