select user_id, account_id, lower(trim(email)) as email, invited_at
from {{ clean_rows('product_users') }}
