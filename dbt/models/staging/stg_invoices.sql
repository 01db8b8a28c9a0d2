select invoice_id, account_id, subscription_id, amount, upper(trim(currency)) as currency,
       lower(trim(status)) as status, issued_at
from {{ clean_rows('invoices') }}
