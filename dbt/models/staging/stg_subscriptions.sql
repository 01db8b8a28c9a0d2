select
    subscription_id,
    account_id,
    opportunity_id,
    {{ canonical_value('plan', 'plan') }} as plan,
    seats,
    mrr,
    {{ canonical_value('billing_interval', 'billing_interval') }} as billing_interval,
    started_at,
    cancelled_at
from {{ clean_rows('subscriptions') }}
