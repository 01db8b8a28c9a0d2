select opportunity_id, lower(trim(stage)) as stage, entered_at
from {{ clean_rows('opportunity_stage_history') }}
