-- Analyst KPIs of the closed loop (issue 19, item 3): received orders, 按时签收率, the 三率 of
-- 《北京市接诉即办工作条例》 (响应率, 解决率, 满意率), 按时办结率, 发回重办率, open, overdue and
-- problem orders, per department, county, township, grid and category, by day and by month of
-- submission (Asia/Shanghai). Definitions and sources: README, "The closed loop".

-- One row per order (并单 duplicates left out, as in work_orders_now) with its grid (from
-- gov.reports) and what the measures count.
CREATE VIEW IF NOT EXISTS {database}.kpi_orders AS
SELECT w.*,
       r.grid_id AS grid_id,
       toDate(w.submitted_at) AS day,
       toStartOfMonth(w.submitted_at) AS month,
       w.state NOT IN ('closed', 'cancelled') AS is_open,
       w.state IN ('submitted', 'accepted', 'reopened', 'dispatched') AND w.deadline < now64(3) AS is_overdue,
       -- 签收: judged once signed, or once the sign-for deadline passed unsigned (an order
       -- cancelled before it was signed is not judged; rows from before 0010 have no deadline)
       w.sign_deadline IS NOT NULL
           AND (w.accepted_at IS NOT NULL OR (w.state != 'cancelled' AND w.sign_deadline < now64(3))) AS sign_due,
       -- 响应: any handling step within 24 h; judged once answered or 24 h passed
       w.responded_at IS NOT NULL OR w.submitted_at + INTERVAL 24 HOUR < now64(3) AS response_due,
       w.responded_at IS NOT NULL AND w.responded_at <= w.submitted_at + INTERVAL 24 HOUR AS responded_in_time,
       w.satisfaction IN ('satisfied', 'basically_satisfied', 'dissatisfied') AS rated
FROM {database}.work_orders AS w FINAL
LEFT JOIN (SELECT report_id, grid_id, duplicate_of FROM {database}.reports FINAL) AS r
    ON r.report_id = w.report_id
WHERE r.duplicate_of = '';

-- Every measure once, over ten groupings of kpi_orders: dimension (department, county,
-- township, grid, category) × period (day, month). The views below pick one dimension each.
CREATE VIEW IF NOT EXISTS {database}.kpi_stats AS
SELECT g.1 AS dimension, g.2 AS period, g.3 AS period_start, g.4 AS key,
       -- names of the group's place or category (those of its own dimension are meaningful)
       (any(city), any(county), any(township), any(township_code), any(category_major),
        any(category_minor)) AS names,
       count() AS received,
       countIf(sign_due) AS sign_judged,
       countIf(sign_due AND signed_on_time = true) AS signed_on_time_orders,
       if(sign_judged = 0, NULL, signed_on_time_orders / sign_judged) AS on_time_sign_rate,
       countIf(response_due) AS response_judged,
       countIf(responded_in_time) AS responded,
       if(response_judged = 0, NULL, responded / response_judged) AS response_rate,
       countIf(rated) AS rated_orders,
       countIf(rated AND resident_solved = true) AS solved,
       countIf(satisfaction IN ('satisfied', 'basically_satisfied')) AS satisfied,
       if(rated_orders = 0, NULL, solved / rated_orders) AS resolution_rate,
       if(rated_orders = 0, NULL, satisfied / rated_orders) AS satisfaction_rate,
       countIf(state = 'closed') AS closed,
       countIf(state = 'closed' AND on_time = true) AS closed_on_time,
       if(closed = 0, NULL, closed_on_time / closed) AS on_time_close_rate,
       countIf(reopens > 0 OR resolved_at IS NOT NULL) AS handed_in,
       countIf(reopens > 0) AS reworked,
       if(handed_in = 0, NULL, reworked / handed_in) AS reopen_rate,
       countIf(is_open) AS open,
       countIf(is_overdue) AS overdue,
       countIf(problem) AS problem_orders,
       countIf(transfers > 0) AS transferred,
       countIf(revisits > 0) AS revisited,
       countIf(notEmpty(warnings)) AS warned
FROM
(
    SELECT *,
           arrayJoin([
               ('department', 'day', day, department), ('department', 'month', month, department),
               ('county', 'day', day, county_code), ('county', 'month', month, county_code),
               ('township', 'day', day, township_code), ('township', 'month', month, township_code),
               ('grid', 'day', day, grid_id), ('grid', 'month', month, grid_id),
               ('category', 'day', day, category_code), ('category', 'month', month, category_code)
           ]) AS g
    FROM {database}.kpi_orders
)
GROUP BY g;

-- One view per dimension: period ('day' | 'month'), period_start (the day, or the month's first
-- day), the dimension's key and names, then the measures of kpi_stats.
CREATE VIEW IF NOT EXISTS {database}.kpi_by_department AS
SELECT period, period_start, key AS department, * EXCEPT (dimension, period, period_start, key, names)
FROM {database}.kpi_stats WHERE dimension = 'department';

CREATE VIEW IF NOT EXISTS {database}.kpi_by_county AS
SELECT period, period_start, key AS county_code, names.1 AS city, names.2 AS county,
       * EXCEPT (dimension, period, period_start, key, names)
FROM {database}.kpi_stats WHERE dimension = 'county';

CREATE VIEW IF NOT EXISTS {database}.kpi_by_township AS
SELECT period, period_start, key AS township_code, names.1 AS city, names.2 AS county,
       names.3 AS township, * EXCEPT (dimension, period, period_start, key, names)
FROM {database}.kpi_stats WHERE dimension = 'township';

-- grid_id '' collects the orders whose report named no grid (the hotline often does not).
CREATE VIEW IF NOT EXISTS {database}.kpi_by_grid AS
SELECT period, period_start, key AS grid_id, names.4 AS township_code, names.1 AS city,
       names.2 AS county, names.3 AS township, * EXCEPT (dimension, period, period_start, key, names)
FROM {database}.kpi_stats WHERE dimension = 'grid';

CREATE VIEW IF NOT EXISTS {database}.kpi_by_category AS
SELECT period, period_start, key AS category_code, names.5 AS category_major,
       names.6 AS category_minor, * EXCEPT (dimension, period, period_start, key, names)
FROM {database}.kpi_stats WHERE dimension = 'category';
