{{ config(tags=['daily_history'], meta={'dagster': {'ref': {'name': 'lead_labels'}}}) }}
-- The label is null exactly when its 90-day window is still open, and otherwise agrees with the
-- lead's conversion time.
select f.lead_id, f.as_of, f.converted_90d, l.converted_at, w.data_through
from {{ ref('lead_labels') }} as f
join {{ ref('int_leads') }} as l using (lead_id)
cross join {{ ref('int_data_window') }} as w
where (f.converted_90d is null) <> (f.as_of + {{ var('label_horizon_days') }} > w.data_through)
   or (f.converted_90d is not null and f.converted_90d <> case
         when l.converted_at >= f.as_of + interval 1 day
          and l.converted_at < f.as_of + interval 1 day + interval {{ var('label_horizon_days') }} day then 1
         else 0 end)
