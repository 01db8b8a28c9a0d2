select opportunity_id, {{ canonical_value('opportunity_stage', 'stage') }} as stage, entered_at
from {{ clean_rows('opportunity_stage_history') }}
