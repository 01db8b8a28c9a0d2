-- The time frame of the data: where the history starts and the last complete day it covers. The
-- history models and the labels are bounded by it, so nothing is computed for days the data does
-- not cover yet.
select
    (select cast(min(created_at) as date) from {{ ref('stg_contacts') }}) as history_start,
    cast(greatest(
        (select max(occurred_at) from {{ ref('stg_marketing_events') }}),
        (select max(usage_date) from {{ ref('stg_product_usage') }})
    ) as date) as data_through
