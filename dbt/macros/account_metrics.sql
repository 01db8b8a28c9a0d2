{#-
  Account metrics at the cutoff of every day that `dates_sql` (a query with one column `as_of`) returns.
  One definition serves `account_metrics` (today) and `account_metrics_daily` (history), so the
  current figures and their history can never disagree. Each block joins only the rows inside its
  window, which is what keeps the history cheap.
-#}
{% macro account_metrics_as_of(dates_sql) -%}
with dates as (
    {{ dates_sql }}
),

accounts as (
    select d.as_of, a.account_id, a.industry, a.employee_band, a.country
    from dates as d
    join {{ ref('int_accounts') }} as a on a.created_at < {{ as_of_cutoff('d.as_of') }}
),

active_subscriptions as (
    select
        d.as_of,
        s.account_id,
        sum(s.mrr) as mrr,
        sum(s.seats) as seats,
        -- The account's plan is its best active plan.
        max_by(s.plan, case s.plan when 'enterprise' then 3 when 'professional' then 2 else 1 end) as plan,
        bool_or(s.billing_interval = 'annual') as has_annual_plan
    from dates as d
    join {{ ref('stg_subscriptions') }} as s
      on s.started_at < {{ as_of_cutoff('d.as_of') }}
     and (s.cancelled_at is null or s.cancelled_at >= {{ as_of_cutoff('d.as_of') }})
    group by all
),

subscription_history as (
    select d.as_of, s.account_id, min(s.started_at) as first_subscribed_at
    from dates as d
    join {{ ref('stg_subscriptions') }} as s on s.started_at < {{ as_of_cutoff('d.as_of') }}
    group by all
),

revenue as (
    -- LTV is the revenue actually collected to date: the sum of payments received.
    select d.as_of, i.account_id, sum(p.amount) as ltv, min(p.paid_at) as first_paid_at
    from dates as d
    join {{ ref('stg_payments') }} as p on p.paid_at < {{ as_of_cutoff('d.as_of') }}
    join {{ ref('stg_invoices') }} as i using (invoice_id)
    group by all
),

users as (
    select
        d.as_of,
        u.account_id,
        count(*) as users_total,
        count(*) filter (where u.invited_at >= {{ as_of_cutoff('d.as_of') }} - interval 30 day) as users_new_30d
    from dates as d
    join {{ ref('stg_product_users') }} as u on u.invited_at < {{ as_of_cutoff('d.as_of') }}
    group by all
),

workspaces as (
    select
        d.as_of,
        w.account_id,
        count(*) as workspaces_created,
        count(*) filter (where w.created_at >= {{ as_of_cutoff('d.as_of') }} - interval 30 day)
            as workspaces_created_30d
    from dates as d
    join {{ ref('stg_workspaces') }} as w on w.created_at < {{ as_of_cutoff('d.as_of') }}
    group by all
),

usage as (
    select
        d.as_of,
        u.account_id,
        count(distinct u.user_id) filter (where u.usage_date > d.as_of - 7) as active_users_7d,
        count(distinct u.user_id) filter (where u.usage_date > d.as_of - 30) as active_users_30d,
        coalesce(sum(u.feature_events) filter (where u.usage_date > d.as_of - 7), 0) as product_events_7d,
        coalesce(sum(u.feature_events) filter (where u.usage_date > d.as_of - 30), 0) as product_events_30d,
        sum(u.feature_events) as product_events_90d,
        count(distinct u.usage_date) filter (where u.usage_date > d.as_of - 30) as active_days_30d
    from dates as d
    join {{ ref('stg_product_usage') }} as u
      on u.usage_date <= d.as_of
     and u.usage_date > d.as_of - 90
     and u.loaded_at < {{ as_of_cutoff('d.as_of') }}
    group by all
),

marketing as (
    select
        d.as_of,
        m.account_id,
        coalesce(sum(m.touches) filter (where m.activity_date > d.as_of - 7), 0) as marketing_touches_7d,
        coalesce(sum(m.touches) filter (where m.activity_date > d.as_of - 30), 0) as marketing_touches_30d,
        sum(m.touches) as marketing_touches_90d,
        coalesce(sum(m.pricing_views) filter (where m.activity_date > d.as_of - 30), 0) as pricing_views_30d
    from dates as d
    join {{ ref('int_account_daily_marketing') }} as m
      on m.known_date <= d.as_of
     and m.activity_date > d.as_of - 90
    group by all
),

pipeline as (
    select d.as_of, o.account_id, count(*) as open_opportunities, sum(o.amount) as open_pipeline_amount
    from dates as d
    join {{ ref('stg_opportunities') }} as o
      on o.created_at < {{ as_of_cutoff('d.as_of') }}
     and (o.closed_at is null or o.closed_at >= {{ as_of_cutoff('d.as_of') }})
    group by all
)

select
    accounts.account_id,
    accounts.as_of,
    case
        when active_subscriptions.mrr > 0 then 'customer'
        when subscription_history.first_subscribed_at is not null then 'churned'
        when coalesce(users.users_new_30d, 0) + coalesce(usage.active_users_30d, 0) > 0 then 'trial'
        else 'prospect'
    end as customer_status,
    coalesce(active_subscriptions.plan, 'none') as plan,
    case
        when active_subscriptions.plan is null then 'none'
        when active_subscriptions.has_annual_plan then 'annual'
        else 'monthly'
    end as billing_interval,
    coalesce(active_subscriptions.seats, 0) as seats,
    round(coalesce(active_subscriptions.mrr, 0), 2) as mrr,
    round(12 * coalesce(active_subscriptions.mrr, 0), 2) as arr,
    round(coalesce(revenue.ltv, 0), 2) as ltv,
    cast(revenue.first_paid_at as date) as first_paid_date,
    coalesce(workspaces.workspaces_created, 0) as workspaces_created,
    coalesce(workspaces.workspaces_created_30d, 0) as workspaces_created_30d,
    coalesce(users.users_total, 0) as users_total,
    coalesce(users.users_new_30d, 0) as users_new_30d,
    coalesce(usage.active_users_7d, 0) as active_users_7d,
    coalesce(usage.active_users_30d, 0) as active_users_30d,
    coalesce(usage.active_days_30d, 0) as active_days_30d,
    coalesce(usage.product_events_7d, 0) as product_events_7d,
    coalesce(usage.product_events_30d, 0) as product_events_30d,
    coalesce(usage.product_events_90d, 0) as product_events_90d,
    coalesce(marketing.marketing_touches_7d, 0) as marketing_touches_7d,
    coalesce(marketing.marketing_touches_30d, 0) as marketing_touches_30d,
    coalesce(marketing.marketing_touches_90d, 0) as marketing_touches_90d,
    coalesce(marketing.pricing_views_30d, 0) as pricing_views_30d,
    coalesce(pipeline.open_opportunities, 0) as open_opportunities,
    round(coalesce(pipeline.open_pipeline_amount, 0), 2) as open_pipeline_amount
from accounts
left join active_subscriptions using (as_of, account_id)
left join subscription_history using (as_of, account_id)
left join revenue using (as_of, account_id)
left join users using (as_of, account_id)
left join workspaces using (as_of, account_id)
left join usage using (as_of, account_id)
left join marketing using (as_of, account_id)
left join pipeline using (as_of, account_id)
{%- endmacro %}
