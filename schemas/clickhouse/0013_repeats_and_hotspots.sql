-- Repeat complaints, hotspots and 每月一题 for analysts (issue 19, item 4). Definitions and
-- sources: README, "The closed loop"; thresholds: pipelines/settings.py.

-- The settings these views depend on, one row (pipelines/analysis.py: govstream worker replaces
-- this view with the values it runs with; these are the defaults).
CREATE OR REPLACE VIEW {database}.analysis_settings AS SELECT toUInt32(30) AS repeat_window_days, toUInt32(7) AS hotspot_window_days, toUInt32(4) AS hotspot_baseline_windows, toUInt32(5) AS hotspot_min_reports, toFloat64(2.0) AS hotspot_min_ratio, toUInt32(10) AS monthly_top_n;
ALTER TABLE {database}.analysis_settings MODIFY COMMENT 'The settings the worker runs with that the repeat, hotspot and monthly top-issue views depend on (one row; govstream worker publishes it)';
ALTER TABLE {database}.analysis_settings COMMENT COLUMN repeat_window_days 'GOVSTREAM_REPEAT_WINDOW_DAYS: 重复诉求: a report by the same person (salted hash) in the same category within this many days after an earlier one repeats it (workorders.find_repeat).', COMMENT COLUMN hotspot_window_days 'GOVSTREAM_HOTSPOT_WINDOW_DAYS: 热点: days in the sliding window whose reports per grid and category are counted (gov.hotspot_windows; default 7: a week evens out the weekly rhythm of reports).', COMMENT COLUMN hotspot_baseline_windows 'GOVSTREAM_HOTSPOT_BASELINE_WINDOWS: 热点: the baseline is the mean count of this many windows just before the current one (default 4: four weeks, about a month).', COMMENT COLUMN hotspot_min_reports 'GOVSTREAM_HOTSPOT_MIN_REPORTS: 热点: a window with fewer reports is never a hotspot (at a baseline of one report a week, 5 or more come by chance in about 0.4 % of weeks).', COMMENT COLUMN hotspot_min_ratio 'GOVSTREAM_HOTSPOT_MIN_RATIO: 热点: the window\'s reports must be at least this many times the baseline mean (2: doubled); with no baseline reports, the minimum count alone decides.', COMMENT COLUMN monthly_top_n 'GOVSTREAM_MONTHLY_TOP_N: 每月一题: categories per month in gov.monthly_top_issues, by reports.';

-- 重复诉求: every order the worker marked as repeating an earlier one (agents/reports.py,
-- workorders.find_repeat: same salted reporter hash, same category, within
-- repeat_window_days, any channel), beside the order it repeats.
CREATE VIEW IF NOT EXISTS {database}.repeat_complaints AS
SELECT w.report_id AS report_id,
       w.repeat_of AS repeat_of,
       r.reporter_hash AS reporter_hash,
       w.category_code AS category_code,
       w.category_major AS category_major,
       w.category_minor AS category_minor,
       w.submitted_at AS submitted_at,
       f.submitted_at AS first_submitted_at,
       dateDiff('second', f.submitted_at, w.submitted_at) / 86400. AS days_after,
       toStartOfMonth(w.submitted_at) AS month,
       w.channel AS channel,
       f.channel AS first_channel,
       toBool(w.channel != f.channel) AS other_channel,
       w.city AS city,
       w.county_code AS county_code,
       w.county AS county,
       w.township_code AS township_code,
       w.township AS township,
       w.region_code AS region_code,
       r.grid_id AS grid_id,
       w.department AS department,
       w.state AS state,
       f.state AS first_state,
       r.duplicate_of AS duplicate_of
FROM {database}.work_orders AS w FINAL
INNER JOIN (SELECT report_id, submitted_at, channel, state FROM {database}.work_orders FINAL) AS f
    ON f.report_id = w.repeat_of
LEFT JOIN (SELECT report_id, reporter_hash, grid_id, duplicate_of FROM {database}.reports FINAL) AS r
    ON r.report_id = w.report_id
WHERE w.repeat_of != '';

-- 热点: per grid, category and day, the reports of the sliding window of hotspot_window_days
-- days ending that day against the baseline: the mean of the hotspot_baseline_windows windows
-- of the same length just before it. Every report counts (a 并单 duplicate too: one more
-- resident raising it); reports naming no grid and X9999 (人工分拨) are left out. Each report
-- day is spread over the window ends it belongs to (offset < window: the window itself, the
-- rest: the baseline), then summed per window end; rows with no report in the window are not
-- shown, nor window ends after today.
CREATE VIEW IF NOT EXISTS {database}.hotspot_windows AS
SELECT window_end,
       window_end - (any(w_days) - 1) AS window_start,
       grid_id,
       category_code,
       any(d_major) AS category_major,
       any(d_minor) AS category_minor,
       any(d_city) AS city,
       any(d_county) AS county,
       any(d_township_code) AS township_code,
       any(d_township) AS township,
       any(d_village) AS village,
       sumIf(reports_that_day, offset < w_days) AS reports,
       sumIf(reports_that_day, offset >= w_days) AS baseline_reports,
       baseline_reports / any(k_windows) AS baseline_mean,
       if(baseline_mean = 0, NULL, reports / baseline_mean) AS ratio,
       toBool(reports >= any(m_reports) AND reports >= any(q_ratio) * baseline_mean) AS hot,
       any(w_days) AS window_days,
       any(k_windows) AS baseline_windows
FROM
(
    SELECT d.*, s.hotspot_window_days AS w_days, s.hotspot_baseline_windows AS k_windows,
           s.hotspot_min_reports AS m_reports, s.hotspot_min_ratio AS q_ratio,
           arrayJoin(range(toUInt64(w_days * (k_windows + 1)))) AS offset,
           d.day + offset AS window_end
    FROM
    (
        SELECT grid_id, category_code, toDate(occurred_at) AS day, count() AS reports_that_day,
               any(category_major) AS d_major, any(category_minor) AS d_minor,
               any(city) AS d_city, any(county) AS d_county, any(township_code) AS d_township_code,
               any(township) AS d_township, any(village) AS d_village
        FROM {database}.reports FINAL
        WHERE grid_id != '' AND category_code != 'X9999'
        GROUP BY grid_id, category_code, day
    ) AS d
    CROSS JOIN {database}.analysis_settings AS s
)
WHERE window_end <= today()
GROUP BY grid_id, category_code, window_end
HAVING reports > 0;

CREATE VIEW IF NOT EXISTS {database}.hotspots AS
SELECT * EXCEPT (hot) FROM {database}.hotspot_windows WHERE hot;

-- 每月一题: per month of submission (Asia/Shanghai), the categories with the most reports,
-- the first monthly_top_n (ties: the smaller code). X9999 (人工分拨) is no issue and is left
-- out of the ranking and the month's total; every report counts, 并单 duplicates too.
CREATE VIEW IF NOT EXISTS {database}.monthly_top_issues AS
SELECT month, rank, category_code, category_major, category_minor, reports, orders, persons,
       repeats, grids, share
FROM
(
    SELECT toStartOfMonth(r.occurred_at) AS month,
           r.category_code AS category_code,
           any(r.category_major) AS category_major,
           any(r.category_minor) AS category_minor,
           count() AS reports,
           countIf(r.duplicate_of = '') AS orders,
           uniqExactIf(r.reporter_hash, r.reporter_hash != '') AS persons,
           countIf(w.repeat_of != '') AS repeats,
           uniqExactIf(r.grid_id, r.grid_id != '') AS grids,
           reports / sum(reports) OVER (PARTITION BY month) AS share,
           row_number() OVER (PARTITION BY month ORDER BY reports DESC, category_code) AS rank
    FROM {database}.reports AS r FINAL
    LEFT JOIN (SELECT report_id, repeat_of FROM {database}.work_orders FINAL) AS w
        ON w.report_id = r.report_id
    WHERE r.category_code != 'X9999'
    GROUP BY month, category_code
)
WHERE rank <= (SELECT monthly_top_n FROM {database}.analysis_settings);

ALTER TABLE {database}.repeat_complaints MODIFY COMMENT '重复诉求: each order that repeats an earlier one of the same person (salted hash) and category within repeat_window_days, any channel, beside the order it repeats';
ALTER TABLE {database}.hotspot_windows MODIFY COMMENT '热点 inputs: per grid, category and day, the reports of the sliding window ending that day against the mean of the baseline windows before it, and whether it is a hotspot (settings in analysis_settings)';
ALTER TABLE {database}.hotspots MODIFY COMMENT '热点: the windows of hotspot_windows that are hotspots (at least hotspot_min_reports reports and hotspot_min_ratio times the baseline mean)';
ALTER TABLE {database}.monthly_top_issues MODIFY COMMENT '每月一题: per month, the monthly_top_n categories with the most reports (X9999 left out)';

ALTER TABLE {database}.repeat_complaints
    COMMENT COLUMN report_id 'the repeating order (report id)',
    COMMENT COLUMN repeat_of 'the earlier order it repeats: the first of that person and category within the window',
    COMMENT COLUMN reporter_hash 'salted hash of the reporter id (the same for both orders)',
    COMMENT COLUMN category_code 'taxonomy v2.1 category code (the same for both orders)',
    COMMENT COLUMN category_major 'taxonomy major category name',
    COMMENT COLUMN category_minor 'taxonomy minor category name',
    COMMENT COLUMN submitted_at 'time of the repeating SUBMIT (Asia/Shanghai)',
    COMMENT COLUMN first_submitted_at 'time of the SUBMIT it repeats (Asia/Shanghai)',
    COMMENT COLUMN days_after 'days from the earlier SUBMIT to this one',
    COMMENT COLUMN month 'month of the repeating SUBMIT (first day, Asia/Shanghai date)',
    COMMENT COLUMN channel 'channel of the repeating report',
    COMMENT COLUMN first_channel 'channel of the report it repeats',
    COMMENT COLUMN other_channel 'the two reports came through different channels',
    COMMENT COLUMN city 'city (地级市) name of the repeating report',
    COMMENT COLUMN county_code 'county division code (6 digits)',
    COMMENT COLUMN county 'county (区县) name',
    COMMENT COLUMN township_code 'township division code (9 digits)',
    COMMENT COLUMN township 'township / street (乡镇街道) name',
    COMMENT COLUMN region_code 'village/community division code (12 digits)',
    COMMENT COLUMN grid_id 'grid (网格) id of the repeating report, or empty',
    COMMENT COLUMN department 'responsible department of the repeating order',
    COMMENT COLUMN state 'state of the repeating order',
    COMMENT COLUMN first_state 'state of the order it repeats',
    COMMENT COLUMN duplicate_of '并单: the repeating report was also merged into this order, or empty';

ALTER TABLE {database}.hotspot_windows
    COMMENT COLUMN window_end 'last day of the window (Asia/Shanghai date)',
    COMMENT COLUMN window_start 'first day of the window: window_end - window_days + 1',
    COMMENT COLUMN grid_id 'grid (网格) id',
    COMMENT COLUMN category_code 'taxonomy v2.1 category code',
    COMMENT COLUMN category_major 'taxonomy major category name',
    COMMENT COLUMN category_minor 'taxonomy minor category name',
    COMMENT COLUMN city 'city (地级市) name',
    COMMENT COLUMN county 'county (区县) name',
    COMMENT COLUMN township_code 'township division code (9 digits)',
    COMMENT COLUMN township 'township / street (乡镇街道) name',
    COMMENT COLUMN village 'village / community (村居) name',
    COMMENT COLUMN reports 'reports of the grid and category in the window (并单 duplicates included)',
    COMMENT COLUMN baseline_reports 'reports in the baseline_windows windows just before it',
    COMMENT COLUMN baseline_mean 'baseline_reports / baseline_windows: the expected count of one window',
    COMMENT COLUMN ratio 'reports / baseline_mean; NULL when the baseline had no report',
    COMMENT COLUMN hot 'a hotspot: reports >= hotspot_min_reports and reports >= hotspot_min_ratio × baseline_mean',
    COMMENT COLUMN window_days 'window length in days (hotspot_window_days)',
    COMMENT COLUMN baseline_windows 'windows in the baseline (hotspot_baseline_windows)';

ALTER TABLE {database}.hotspots
    COMMENT COLUMN window_end 'last day of the window (Asia/Shanghai date)',
    COMMENT COLUMN window_start 'first day of the window: window_end - window_days + 1',
    COMMENT COLUMN grid_id 'grid (网格) id',
    COMMENT COLUMN category_code 'taxonomy v2.1 category code',
    COMMENT COLUMN category_major 'taxonomy major category name',
    COMMENT COLUMN category_minor 'taxonomy minor category name',
    COMMENT COLUMN city 'city (地级市) name',
    COMMENT COLUMN county 'county (区县) name',
    COMMENT COLUMN township_code 'township division code (9 digits)',
    COMMENT COLUMN township 'township / street (乡镇街道) name',
    COMMENT COLUMN village 'village / community (村居) name',
    COMMENT COLUMN reports 'reports of the grid and category in the window (并单 duplicates included)',
    COMMENT COLUMN baseline_reports 'reports in the baseline_windows windows just before it',
    COMMENT COLUMN baseline_mean 'baseline_reports / baseline_windows: the expected count of one window',
    COMMENT COLUMN ratio 'reports / baseline_mean; NULL when the baseline had no report',
    COMMENT COLUMN window_days 'window length in days (hotspot_window_days)',
    COMMENT COLUMN baseline_windows 'windows in the baseline (hotspot_baseline_windows)';

ALTER TABLE {database}.monthly_top_issues
    COMMENT COLUMN month 'month of submission (first day, Asia/Shanghai date)',
    COMMENT COLUMN rank 'rank in the month by reports (1: most; ties: the smaller code first)',
    COMMENT COLUMN category_code 'taxonomy v2.1 category code',
    COMMENT COLUMN category_major 'taxonomy major category name',
    COMMENT COLUMN category_minor 'taxonomy minor category name',
    COMMENT COLUMN reports 'reports in the month (并单 duplicates included)',
    COMMENT COLUMN orders 'work orders in the month (并单 duplicates left out)',
    COMMENT COLUMN persons 'distinct reporters (salted hash; anonymous reports not counted)',
    COMMENT COLUMN repeats 'reports whose order repeats an earlier one (重复诉求)',
    COMMENT COLUMN grids 'distinct grids named (reports without a grid not counted)',
    COMMENT COLUMN share 'reports / all categorised reports of the month (X9999 left out)';
