select
    subscription_id,
    account_id,
    opportunity_id,
    lower(trim(plan)) as plan,
    seats,
    mrr,
    lower(trim(billing_interval)) as billing_interval,
    started_at,
    cancelled_at
from {{ clean_rows('subscriptions') }}
