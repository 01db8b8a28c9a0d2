{{ config(tags=['daily_history'], meta={'dagster': {'ref': {'name': 'lead_features'}}}) }}
-- No feature row uses anything at or after its cutoff (the close of as_of): recompute window counts
-- from the raw event timestamps - happened AND loaded before the cutoff - and compare. This uses the
-- events themselves, not int_lead_daily_activity, so a leak anywhere in the feature path shows up
-- (tests/test_warehouse.py plants one to prove it). Checked on the rows this dbt run built (older rows
-- were built from older exports, which may since have lost deleted or merged records' events), on their
-- latest three as-of days to stay cheap on big warehouses.
with built_now as (
    select * from {{ ref('lead_features') }} where built_by_invocation = '{{ invocation_id }}'
),
checked_days as (
    select distinct as_of from built_now order by as_of desc limit 3
),
rows as (
    select f.lead_id, f.as_of, f.page_views_90d, f.touches_7d, f.email_sends_30d, f.pricing_views_7d,
           f.high_intent_touches_30d, f.active_days_30d, f.days_since_first_high_intent,
           f.days_since_last_high_intent,
           f.as_of + interval 1 day as cutoff
    from built_now as f
    join checked_days using (as_of)
),
events as (
    select r.lead_id, r.as_of, r.cutoff, e.event_type, e.page_category, e.occurred_at,
           (e.event_type = 'page_view' and e.page_category in ('pricing', 'case_study'))
           or (e.event_type = 'form_submit' and e.page_category = 'demo') as high_intent
    from rows as r
    join {{ ref('int_contact_identity') }} as i on i.lead_id = r.lead_id
    join {{ ref('stg_marketing_events') }} as e
      on e.contact_id = i.contact_id
     and e.occurred_at < r.cutoff
     and e.loaded_at < r.cutoff
     and e.occurred_at >= r.cutoff - interval 90 day
),
high_intent_days as (
    select distinct lead_id, as_of, cast(occurred_at as date) as activity_day from events where high_intent
),
burst_start as (
    -- The latest high-intent day with none in the 21 days before it (written without window functions, to
    -- differ from the model's).
    select d.lead_id, d.as_of, max(d.activity_day) as activity_day
    from high_intent_days as d
    where not exists (
        select 1 from high_intent_days as p
        where p.lead_id = d.lead_id and p.as_of = d.as_of
          and p.activity_day < d.activity_day and p.activity_day >= d.activity_day - 21
    )
    group by d.lead_id, d.as_of
),
recomputed as (
    select
        lead_id,
        as_of,
        count(*) filter (where event_type = 'page_view' and occurred_at >= cutoff - interval 90 day)
            as page_views_90d,
        count(*) filter (where event_type <> 'email_send' and occurred_at >= cutoff - interval 7 day)
            as touches_7d,
        count(*) filter (where event_type = 'email_send' and occurred_at >= cutoff - interval 30 day)
            as email_sends_30d,
        count(*) filter (where event_type = 'page_view' and page_category = 'pricing'
                         and occurred_at >= cutoff - interval 7 day) as pricing_views_7d,
        count(*) filter (where high_intent and occurred_at >= cutoff - interval 30 day) as high_intent_touches_30d,
        count(distinct cast(occurred_at as date)) filter (where event_type <> 'email_send'
                                                          and occurred_at >= cutoff - interval 30 day)
            as active_days_30d,
        {{ days_between('max(cast(occurred_at as date)) filter (where high_intent)', 'as_of') }} as days_since_last_high_intent
    from events
    group by lead_id, as_of
)
select r.lead_id, r.as_of,
       r.page_views_90d, c.page_views_90d as expected_page_views_90d,
       r.touches_7d, c.touches_7d as expected_touches_7d,
       r.days_since_first_high_intent, {{ days_between('b.activity_day', 'r.as_of') }} as expected_days_since_first_high_intent
from rows as r
left join recomputed as c using (lead_id, as_of)
left join burst_start as b using (lead_id, as_of)
where r.page_views_90d <> coalesce(c.page_views_90d, 0)
   or r.touches_7d <> coalesce(c.touches_7d, 0)
   or r.email_sends_30d <> coalesce(c.email_sends_30d, 0)
   or r.pricing_views_7d <> coalesce(c.pricing_views_7d, 0)
   or r.high_intent_touches_30d <> coalesce(c.high_intent_touches_30d, 0)
   or r.active_days_30d <> coalesce(c.active_days_30d, 0)
   or r.days_since_last_high_intent is distinct from c.days_since_last_high_intent
   or r.days_since_first_high_intent is distinct from {{ days_between('b.activity_day', 'r.as_of') }}
