select workspace_id, account_id, created_by_user_id, created_at
from {{ clean_rows('workspaces') }}
