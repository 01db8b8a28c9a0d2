-- One row per user per active day. A day's activity is known at its `_loaded_at`.
select user_id, account_id, usage_date, sessions, feature_events, _loaded_at as loaded_at
from {{ clean_rows('product_usage') }}
