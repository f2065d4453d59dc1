-- The closed loop of 接诉即办 (issue 19): 签收 deadline and response, 转派 (TRANSFER), 回访
-- (REVISIT) with the resident's rating, 督办 warnings raised, 问题工单, repeat complaints. Written
-- by the report agent from its work-orders state (pipelines/workorders.py: order_row). Defaults
-- describe the rows written before: no sign-for deadline (NULL: not counted in the sign-for
-- rate), the ACCEPT as the response, no transfer, no callback, no warning, not a problem order.
ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS sign_deadline Nullable(DateTime64(3, 'Asia/Shanghai')) DEFAULT NULL
        COMMENT 'submitted_at + the priority''s sign-for hours (pipelines/data/sign_deadlines.csv)';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS signed_on_time Nullable(Bool) DEFAULT NULL
        COMMENT 'accepted_at <= sign_deadline (签收); null until the ACCEPT';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS responded_at Nullable(DateTime64(3, 'Asia/Shanghai')) DEFAULT accepted_at
        COMMENT 'first handling step of any kind (响应); null while none';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS transfers UInt16 DEFAULT 0 COMMENT 'TRANSFER steps (转派)';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS revisits UInt16 DEFAULT 0 COMMENT 'REVISIT steps (回访)';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS revisited_at Nullable(DateTime64(3, 'Asia/Shanghai')) DEFAULT NULL
        COMMENT 'the latest REVISIT';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS satisfaction LowCardinality(String) DEFAULT ''
        COMMENT 'latest rating: satisfied | basically_satisfied | dissatisfied | unreachable; empty before a callback';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS resident_solved Nullable(Bool) DEFAULT NULL
        COMMENT 'latest callback: the resident says the problem was solved; null when unreachable or none';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS dissatisfied_streak UInt16 DEFAULT 0
        COMMENT 'dissatisfied ratings in a row (unreachable neither counts nor breaks the row)';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS problem Bool DEFAULT false
        COMMENT '问题工单: reworked (reopens) or transferred 3 times; raised one level (提级督办)';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS problem_at Nullable(DateTime64(3, 'Asia/Shanghai')) DEFAULT NULL;

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS warnings Array(LowCardinality(String)) DEFAULT []
        COMMENT '督办 conditions warned of (alerts with source supervision), once each: no_response | no_progress | dissatisfied_twice | problem_order';

ALTER TABLE {database}.work_orders
    ADD COLUMN IF NOT EXISTS repeat_of String DEFAULT ''
        COMMENT '重复诉求: the earlier order of the same person and category within the repeat window; empty when none';
