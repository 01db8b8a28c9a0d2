-- Marketing activity per lead per day, split by the day it became known (`known_date`, from the
-- load time) so point-in-time features can ignore what had not arrived yet. This pre-aggregation is
-- what keeps the daily history models cheap: they read a few rows per lead, not every event.
-- Counts are INTEGER so that their sums stay BIGINT (a BIGINT sum is a 16-byte HUGEINT in DuckDB).
with daily as (
    select
        identity.lead_id,
        cast(events.occurred_at as date) as activity_date,
        cast(greatest(events.occurred_at, events.loaded_at) as date) as known_date,
        cast(count(*) filter (where events.event_type = 'page_view') as integer) as page_views,
        cast(count(*) filter (where events.page_category = 'pricing' and events.event_type = 'page_view') as integer) as pricing_views,
        cast(count(*) filter (where events.page_category = 'case_study' and events.event_type = 'page_view') as integer) as case_study_views,
        cast(count(*) filter (where events.page_category = 'docs' and events.event_type = 'page_view') as integer) as docs_views,
        cast(count(*) filter (where events.page_category = 'blog' and events.event_type = 'page_view') as integer) as blog_views,
        cast(count(*) filter (where events.event_type = 'form_submit' and events.page_category = 'demo') as integer) as demo_requests,
        cast(count(*) filter (where events.event_type = 'email_send') as integer) as email_sends,
        cast(count(*) filter (where events.event_type = 'email_open') as integer) as email_opens,
        cast(count(*) filter (where events.event_type = 'email_click') as integer) as email_clicks,
        cast(count(*) filter (where events.event_type = 'webinar_attended') as integer) as webinars,
        -- High intent: what a lead in an evaluation does (pricing and case-study page views, demo requests).
        cast(count(*) filter (where (events.event_type = 'page_view' and events.page_category in ('pricing', 'case_study'))
                                 or (events.event_type = 'form_submit' and events.page_category = 'demo')) as integer)
            as high_intent_touches,
        -- A touch is anything the lead did (not what we sent).
        cast(count(*) filter (where events.event_type <> 'email_send') as integer) as touches
    from {{ ref('stg_marketing_events') }} as events
    join {{ ref('int_contact_identity') }} as identity on identity.contact_id = events.contact_id
    group by all
)

-- Distinct days without count(distinct): a day's activity can sit in several rows (one per known_date), and
-- the earliest-known of them is visible whenever any is, so summing these flags over the rows known by a
-- cutoff counts the distinct days with a touch (with a page view) - a cheap sum instead of a distinct count.
select
    daily.*,
    case when touches > 0
          and known_date = min(case when touches > 0 then known_date end) over (partition by lead_id, activity_date)
         then 1 else 0 end as first_known_active_day,
    case when page_views > 0
          and known_date = min(case when page_views > 0 then known_date end) over (partition by lead_id, activity_date)
         then 1 else 0 end as first_known_visit_day
from daily
