{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        tags=['daily_history'],
        post_hook="{{ delete_departed([('lead_id', 'int_leads'), ('account_id', 'int_accounts')]) }}",
        **history_config(),
    )
}}
{#-
  Labels are not stored here: lead_labels computes them from the current outcomes (a closed window or a
  corrected outcome shows at once, and no engine has to update stored rows).
  Which (lead, as_of) rows exist: every *open* lead - created by the cutoff, not yet converted, younger
  than `lead_max_age_days` - on every day of the as-of grid (macros/as_of.sql). The grid is daily for
  the days being scored and weekly for the training history: a lead's features barely move within a
  week, so weekly snapshots give the model nearly all the signal at a seventh of the rows (at the bench
  scale, daily rows for 18 months would be ~250M rows; weekly, ~35M).
-#}
with dates as (
    {{ as_of_dates() }}
),

open_leads as (
    -- Only keys travel through the heavy join below; descriptive columns are joined once at the end,
    -- which is what keeps a full build of the history inside memory at the bench scale.
    select d.as_of, l.lead_id
    from dates as d
    join {{ ref('int_leads') }} as l
      on l.created_at < {{ as_of_cutoff('d.as_of') }}
     and l.created_at >= {{ as_of_cutoff('d.as_of') }} - interval {{ var('lead_max_age_days') }} day
     and (l.converted_at is null or l.converted_at >= {{ as_of_cutoff('d.as_of') }})
),

activity as (
    -- Only activity known by the cutoff, from the 90 days before it.
    select
        l.lead_id,
        l.as_of,
        {%- for measure in ['page_views', 'pricing_views', 'case_study_views', 'docs_views', 'blog_views',
                            'demo_requests', 'email_opens', 'email_clicks', 'webinars'] %}
        sum(a.{{ measure }} * {{ decay_weight(days_between('a.activity_date', 'l.as_of')) }}) as {{ measure }}_decayed,
        {%- endfor %}
        {%- for measure, days in [('page_views', 7), ('page_views', 30), ('page_views', 90),
                                  ('pricing_views', 7), ('pricing_views', 30), ('demo_requests', 90),
                                  ('webinars', 90), ('email_sends', 30), ('email_opens', 30),
                                  ('email_clicks', 30), ('touches', 7)] %}
        coalesce(sum(a.{{ measure }}) filter (where a.activity_date > l.as_of - {{ days }}), 0)
            as {{ measure }}_{{ days }}d,
        {%- endfor %}
        coalesce(sum(a.touches) filter (where a.activity_date <= l.as_of - 7 and a.activity_date > l.as_of - 28), 0)
            as touches_prev_21d,
        {{ days_between('max(a.activity_date) filter (where a.touches > 0)', 'l.as_of') }} as days_since_last_touch,
        -- Distinct days, as sums of first-known-row flags (see int_lead_daily_activity). The events have no
        -- sessions: a visit is a day with page views.
        sum(a.first_known_active_day) filter (where a.activity_date > l.as_of - 7) as active_days_7d,
        sum(a.first_known_active_day) filter (where a.activity_date > l.as_of - 30) as active_days_30d,
        sum(a.first_known_visit_day) filter (where a.activity_date > l.as_of - 30) as visit_days_30d
    from open_leads as l
    join {{ ref('int_lead_daily_activity') }} as a
      on a.lead_id = l.lead_id
     and a.known_date <= l.as_of
     and a.activity_date > l.as_of - 90
    group by l.lead_id, l.as_of
),

high_intent_days as (
    -- High-intent activity per day (same point-in-time rules as `activity`, a small subset of its rows: the
    -- high-intent features are computed here, not in that wide aggregate), with the gap since the previous day.
    select
        lead_id,
        as_of,
        activity_date,
        high_intent_touches,
        {{ days_between('lag(activity_date) over (partition by lead_id, as_of order by activity_date)', 'activity_date') }}
            as gap_days
    from (
        -- INTEGER again, so that the sums below stay BIGINT (see int_lead_daily_activity)
        select l.lead_id, l.as_of, a.activity_date, cast(sum(a.high_intent_touches) as integer) as high_intent_touches
        from open_leads as l
        join {{ ref('int_lead_daily_activity') }} as a
          on a.lead_id = l.lead_id
         and a.known_date <= l.as_of
         and a.activity_date > l.as_of - 90
        where a.high_intent_touches > 0
        group by l.lead_id, l.as_of, a.activity_date
    ) as days
),

evaluation as (
    -- The high-intent features. The current evaluation burst is the run of high-intent days, no two
    -- consecutive ones more than 21 days apart, that ends at the latest one: it starts at the latest day
    -- that follows a longer gap (or none).
    select
        lead_id,
        as_of,
        sum(high_intent_touches) filter (where activity_date > as_of - 7) as high_intent_touches_7d,
        sum(high_intent_touches) filter (where activity_date > as_of - 30) as high_intent_touches_30d,
        sum(high_intent_touches) filter (where activity_date <= as_of - 7 and activity_date > as_of - 28)
            as high_intent_touches_prev_21d,
        {{ days_between('max(activity_date) filter (where gap_days is null or gap_days > 21)', 'as_of') }}
            as days_since_first_high_intent,
        {{ days_between('max(activity_date)', 'as_of') }} as days_since_last_high_intent
    from high_intent_days
    group by lead_id, as_of
)

select
    l.lead_id,
    l.account_id,
    o.as_of,
    -- fit: who the lead is
    l.industry,
    l.employee_band,
    l.country,
    l.revenue_band,
    year(o.as_of) - l.founded_year as company_age_years,
    l.seniority,
    l.department,
    l.lead_source,
    l.utm_campaign,
    {{ days_between('cast(l.created_at as date)', 'o.as_of') }} as lead_age_days,
    l.has_marketing_consent,
    -- engagement: what the lead did, recency-weighted and windowed
    {%- for measure in ['page_views', 'pricing_views', 'case_study_views', 'docs_views', 'blog_views',
                        'demo_requests', 'email_opens', 'email_clicks', 'webinars'] %}
    round(coalesce(a.{{ measure }}_decayed, 0), 4) as {{ measure }}_decayed,
    {%- endfor %}
    {%- for column in ['page_views_7d', 'page_views_30d', 'page_views_90d', 'pricing_views_7d',
                       'pricing_views_30d', 'demo_requests_90d', 'webinars_90d', 'email_sends_30d',
                       'email_opens_30d', 'email_clicks_30d', 'touches_7d', 'touches_prev_21d'] %}
    coalesce(a.{{ column }}, 0) as {{ column }},
    {%- endfor %}
    round((coalesce(a.touches_7d, 0) + 1) / (cast(coalesce(a.touches_prev_21d, 0) as double) / 3 + 1), 4) as engagement_velocity,
    a.days_since_last_touch,
    -- evaluation stage: pricing, case studies and demo requests (high intent), and how the lead visits
    coalesce(e.high_intent_touches_7d, 0) as high_intent_touches_7d,
    coalesce(e.high_intent_touches_30d, 0) as high_intent_touches_30d,
    e.days_since_first_high_intent,
    e.days_since_last_high_intent,
    round((coalesce(e.high_intent_touches_7d, 0) + 1) / (cast(coalesce(e.high_intent_touches_prev_21d, 0) as double) / 3 + 1), 4)
        as intent_velocity,
    coalesce(a.active_days_7d, 0) as active_days_7d,
    coalesce(a.active_days_30d, 0) as active_days_30d,
    greatest(coalesce(a.visit_days_30d, 0) - 1, 0) as return_visits_30d,
    case when a.visit_days_30d > 0 then round(cast(a.page_views_30d as double) / a.visit_days_30d, 4) else 0 end
        as pages_per_visit_day_30d,
    -- the account as of the same day (opportunity and pipeline figures are left out on purpose: an
    -- opportunity is the sales process already acting on the outcome we want to predict)
    m.customer_status as account_customer_status,
    m.plan as account_plan,
    m.arr as account_arr,
    m.users_total as account_users_total,
    m.users_new_30d as account_users_new_30d,
    m.workspaces_created as account_workspaces_created,
    m.workspaces_created_30d as account_workspaces_created_30d,
    m.active_users_7d as account_active_users_7d,
    m.active_users_30d as account_active_users_30d,
    m.product_events_30d as account_product_events_30d,
    m.marketing_touches_30d as account_marketing_touches_30d,
    -- which dbt run built the row: the point-in-time test checks rows against the raw data they were built
    -- from, which later exports may have changed (deleted events, merged records)
    '{{ invocation_id }}' as built_by_invocation
from open_leads as o
join {{ ref('int_leads') }} as l on l.lead_id = o.lead_id
left join activity as a on a.lead_id = o.lead_id and a.as_of = o.as_of
left join evaluation as e on e.lead_id = o.lead_id and e.as_of = o.as_of
left join {{ ref('account_metrics_daily') }} as m
  on m.account_id = l.account_id and m.as_of = o.as_of
