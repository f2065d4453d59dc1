-- Outdated and unknown region codes of a warning (issue 13): the warning is no longer refused
-- whole. region_codes holds the current codes the warning reaches; these two columns record what
-- was changed on the way (pipelines/alerts.py, pipelines/divisions.py resolve()).
-- Both have defaults, so rows written before this migration read as "nothing changed".
ALTER TABLE {database}.alerts
    ADD COLUMN IF NOT EXISTS replaced_codes Map(String, Array(String)) DEFAULT map()
        COMMENT 'withdrawn code as sent -> its successors (pipelines/data/divisions/withdrawn.csv, 民政部 code changes)';

ALTER TABLE {database}.alerts
    ADD COLUMN IF NOT EXISTS unknown_codes Array(String) DEFAULT []
        COMMENT 'codes as sent that name no division, old or new; dropped from the area';
