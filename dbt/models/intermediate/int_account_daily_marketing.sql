-- The marketing activity of all of an account's leads, per day and known date.
select
    leads.account_id,
    activity.activity_date,
    activity.known_date,
    sum(activity.touches) as touches,
    sum(activity.page_views) as page_views,
    sum(activity.pricing_views) as pricing_views,
    sum(activity.email_clicks) as email_clicks
from {{ ref('int_lead_daily_activity') }} as activity
join {{ ref('int_leads') }} as leads using (lead_id)
group by all
