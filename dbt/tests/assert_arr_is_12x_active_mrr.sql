{{ config(meta={'dagster': {'ref': {'name': 'account_metrics'}}}) }}
-- Business rule: ARR = 12 × MRR of the subscriptions active at the close of the last day of data,
-- recomputed here straight from staging, independently of the metrics macro.
with window_end as (select data_through + interval 1 day as cutoff from {{ ref('int_data_window') }}),
expected as (
    select s.account_id, 12 * sum(s.mrr) as arr
    from {{ ref('stg_subscriptions') }} as s, window_end as w
    where s.started_at < w.cutoff and (s.cancelled_at is null or s.cancelled_at >= w.cutoff)
    group by s.account_id
)
select m.account_id, m.arr, coalesce(e.arr, 0) as expected_arr
from {{ ref('account_metrics') }} as m
left join expected as e using (account_id)
where abs(m.arr - coalesce(e.arr, 0)) > 0.01
