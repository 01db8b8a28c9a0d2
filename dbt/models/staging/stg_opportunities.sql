select
    opportunity_id,
    account_id,
    contact_id,
    amount,
    {{ canonical_value('opportunity_stage', 'stage') }} as stage,
    created_at,
    closed_at,
    coalesce(is_won, false) and closed_at is not null as is_won,
    closed_at is not null as is_closed
from {{ clean_rows('opportunities') }}
