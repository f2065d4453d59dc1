-- 热点预警 (issue 19): alerts with source hotspot, sent by the worker's leader for each new
-- hotspot of gov.hotspots (pipelines/hotspots.py, agents/hotspots.py) through the alert topic,
-- so they are rows of gov.alerts and gov.alert_targets like every warning. Only comments change.
ALTER TABLE {database}.alerts MODIFY COMMENT 'Weather warnings (CAP Alert/Update/Cancel) and derived form / sla / supervision / hotspot alerts, one row per message; read with FINAL';
ALTER TABLE {database}.alert_targets MODIFY COMMENT 'One row per warning and village it reaches (weather and derived form, sla, supervision and hotspot alerts), with the village\'s population';

ALTER TABLE {database}.alerts
    COMMENT COLUMN source 'weather (meteorological bureau), form, sla, supervision (督办) or hotspot (热点预警)';
ALTER TABLE {database}.alert_targets
    COMMENT COLUMN source 'weather (meteorological bureau), form, sla, supervision (督办) or hotspot (热点预警)';
ALTER TABLE {database}.alerts_active
    COMMENT COLUMN source 'weather (meteorological bureau), form, sla, supervision (督办) or hotspot (热点预警)';
ALTER TABLE {database}.alerts_active_by_level
    COMMENT COLUMN source 'weather (meteorological bureau), form, sla, supervision (督办) or hotspot (热点预警)';
