{{ config(materialized='table', tags=['workflow']) }}
-- Alerts from the score history: one row per lead, kind and day (alert_date = the scoring day). Point in
-- time: the alert of a day only reads scores of that day and the alert_window_days before it, so rebuilding
-- the table gives every past day the same alerts (idempotent per day; the alert_id is stable). An alert
-- fires on the day its condition starts to hold, not again while it keeps holding, so a lead that stays
-- hot is not re-alerted every night.
--   spike        the score rose by alert_spike_points or more above its lowest of the window, or crossed
--                alert_hot_score from below (a score of the window's latest earlier day under it)
--   decline      a lead that was hot within the window lost alert_decline_points or more from that high,
--                or has had no touch for alert_silent_days
--   unowned_hot  the lead became hot and has no active owner in the CRM (routing gives it one)
-- Only current leads with marketing consent (lead_crm_ids): withdrawing consent removes a lead's alerts.
-- Owner and consent are today's: the CRM export has no history of them.
-- depends_on: {{ ref('lead_crm_ids') }}
-- depends_on: {{ ref('crm_users') }}
-- depends_on: {{ ref('lead_features') }}
{%- set scores = load_relation(source('leadscore', 'lead_scores')) %}
{%- if target.type != 'duckdb' or scores is none %}
-- No lead scored yet (a new warehouse), or another engine than DuckDB: the scores live in the DuckDB file,
-- so Dagster builds this model with the DuckDB target whatever the engine (README "Workflow"). Either way
-- the model builds, empty, with its columns, and reads nothing else.
select
    cast(null as {{ dbt.type_string() }}) as alert_id, cast(null as {{ dbt.type_string() }}) as lead_id,
    cast(null as {{ dbt.type_string() }}) as account_id, cast(null as date) as alert_date,
    cast(null as {{ dbt.type_string() }}) as kind, cast(null as double) as score,
    cast(null as double) as previous_score, cast(null as double) as score_change,
    cast(null as {{ dbt.type_string() }}) as tier, {{ empty_string_array() }} as reasons,
    cast(null as {{ dbt.type_string() }}) as rule, cast(null as {{ dbt.type_string() }}) as owner_user_id
where 1 = 0
{%- else %}
{%- set window = var('alert_window_days') | int %}
{%- set hot = var('alert_hot_score') | float %}
{%- set spike = var('alert_spike_points') | float %}
{%- set decline = var('alert_decline_points') | float %}
{%- set silent = var('alert_silent_days') | int %}

with scores as (
    select lead_id, account_id, as_of, score, tier, reasons
    from {{ source('leadscore', 'lead_scores') }}
),

leads as (
    select leads.lead_id, leads.owner_user_id, coalesce(users.is_active, false) as owner_is_active
    from {{ ref('lead_crm_ids') }} as leads
    left join {{ ref('crm_users') }} as users on users.user_id = leads.owner_user_id
    where leads.has_marketing_consent
),

windowed as (
    select
        scores.*,
        leads.owner_user_id,
        leads.owner_is_active,
        features.days_since_last_touch,
        min(scores.score) over earlier as window_low,
        max(scores.score) over earlier as window_high,
        -- the latest earlier score, when it is within the window
        case
            when lag(scores.as_of) over by_day >= scores.as_of - {{ window }} then lag(scores.score) over by_day
        end as last_score
    from scores
    join leads using (lead_id)
    left join {{ ref('lead_features') }} as features using (lead_id, as_of)
    window
        earlier as (
            partition by scores.lead_id order by scores.as_of
            range between interval {{ window }} day preceding and interval 1 day preceding
        ),
        by_day as (partition by scores.lead_id order by scores.as_of)
),

conditions as (
    select
        *,
        coalesce(score - window_low >= {{ spike }}, false) as rose,
        coalesce(score >= {{ hot }} and last_score < {{ hot }}, false) as crossed,
        coalesce(window_high >= {{ hot }} and window_high - score >= {{ decline }}, false) as fell,
        -- going cold: hot within the window, untouched for alert_silent_days, and not rising today (a rising
        -- score is a spike, not a decline)
        coalesce(
            greatest(window_high, score) >= {{ hot }} and days_since_last_touch >= {{ silent }}
            and not (score - window_low >= {{ spike }} or (score >= {{ hot }} and last_score < {{ hot }})),
            false
        ) as went_silent,
        score >= {{ hot }} and coalesce(last_score < {{ hot }}, true) as became_hot
    from windowed
),

states as (
    select
        *,
        rose or crossed as spiking,
        fell or went_silent as declining,
        -- yesterday's state: an alert fires when its state begins (a gap longer than the window restarts it)
        case
            when lag(as_of) over by_day >= as_of - {{ window }} then lag(rose or crossed) over by_day
        end as was_spiking,
        case
            when lag(as_of) over by_day >= as_of - {{ window }} then lag(fell or went_silent) over by_day
        end as was_declining
    from conditions
    window by_day as (partition by lead_id order by as_of)
),

alerts as (
    select
        *,
        'spike' as kind,
        case when rose then window_low else last_score end as previous_score,
        case
            when rose then 'Score rose ' || cast(round(score - window_low) as integer) || ' points in '
                || '{{ window }} days, from ' || cast(round(window_low) as integer) || ' to '
                || cast(round(score) as integer)
            else 'Score crossed the hot threshold of {{ hot | int }}: from ' || cast(round(last_score) as integer)
                || ' to ' || cast(round(score) as integer)
        end as rule
    from states
    where spiking and not coalesce(was_spiking, false)
    union all
    select
        *,
        'decline' as kind,
        window_high as previous_score,
        case
            when fell then 'Score fell ' || cast(round(window_high - score) as integer) || ' points in '
                || '{{ window }} days, from ' || cast(round(window_high) as integer) || ' to '
                || cast(round(score) as integer)
            else 'No touch for ' || days_since_last_touch || ' days after being hot (score '
                || cast(round(greatest(window_high, score)) as integer) || ')'
        end as rule
    from states
    where declining and not coalesce(was_declining, false)
    union all
    select
        *,
        'unowned_hot' as kind,
        last_score as previous_score,
        'Hot lead (score ' || cast(round(score) as integer) || ') with no active owner' as rule
    from states
    where became_hot and not owner_is_active
)

select
    md5(lead_id || '|' || kind || '|' || cast(as_of as varchar)) as alert_id,
    lead_id,
    account_id,
    as_of as alert_date,
    kind,
    score,
    previous_score,
    score - previous_score as score_change,
    tier,
    reasons,
    rule,
    owner_user_id
from alerts
{%- endif %}
