-- Marketing activity per lead per day, split by the day it became known (`known_date`, from the
-- load time) so point-in-time features can ignore what had not arrived yet. This pre-aggregation is
-- what keeps the daily history models cheap: they read a few rows per lead, not every event.
select
    identity.lead_id,
    cast(events.occurred_at as date) as activity_date,
    cast(greatest(events.occurred_at, events.loaded_at) as date) as known_date,
    count(*) filter (where events.event_type = 'page_view') as page_views,
    count(*) filter (where events.page_category = 'pricing' and events.event_type = 'page_view') as pricing_views,
    count(*) filter (where events.page_category = 'case_study' and events.event_type = 'page_view') as case_study_views,
    count(*) filter (where events.page_category = 'docs' and events.event_type = 'page_view') as docs_views,
    count(*) filter (where events.page_category = 'blog' and events.event_type = 'page_view') as blog_views,
    count(*) filter (where events.event_type = 'form_submit' and events.page_category = 'demo') as demo_requests,
    count(*) filter (where events.event_type = 'email_send') as email_sends,
    count(*) filter (where events.event_type = 'email_open') as email_opens,
    count(*) filter (where events.event_type = 'email_click') as email_clicks,
    count(*) filter (where events.event_type = 'webinar_attended') as webinars,
    -- A touch is anything the lead did (not what we sent).
    count(*) filter (where events.event_type <> 'email_send') as touches
from {{ ref('stg_marketing_events') }} as events
join {{ ref('int_contact_identity') }} as identity on identity.contact_id = events.contact_id
group by all
