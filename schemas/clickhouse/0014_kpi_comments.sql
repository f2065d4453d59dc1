-- The KPI columns' comments said other than the views compute (0012: resolution_rate
-- 'resolved / received', reopen_rate 'reopened / closed'): they now give each view's own
-- formula, as README "The closed loop" defines it (issue 19).
ALTER TABLE {database}.kpi_by_category
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';

ALTER TABLE {database}.kpi_by_county
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';

ALTER TABLE {database}.kpi_by_department
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';

ALTER TABLE {database}.kpi_by_grid
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';

ALTER TABLE {database}.kpi_by_township
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';

ALTER TABLE {database}.kpi_stats
    COMMENT COLUMN on_time_sign_rate '按时签收率: signed_on_time_orders / sign_judged (ACCEPT by the sign-for deadline / orders signed or past it unsigned)',
    COMMENT COLUMN on_time_close_rate '按时办结率: closed_on_time / closed (closed orders resolved by their first deadline / closed orders)',
    COMMENT COLUMN responded 'orders with a first handling step within 24 h of submission',
    COMMENT COLUMN response_rate '响应率: responded / response_judged (a first step within 24 h / orders answered or 24 h old)',
    COMMENT COLUMN satisfied 'orders whose latest 回访 rating is satisfied or basically_satisfied',
    COMMENT COLUMN resolution_rate '解决率: solved / rated_orders (the latest 回访 says solved / orders whose latest 回访 rated them; unreachable is no rating)',
    COMMENT COLUMN satisfaction_rate '满意率: satisfied / rated_orders (satisfied or basically satisfied / rated orders)',
    COMMENT COLUMN handed_in 'orders resolved at least once or reworked (the denominator of reopen_rate)',
    COMMENT COLUMN reopen_rate '发回重办率: reworked / handed_in (orders reworked at least once / orders resolved or reworked)';
