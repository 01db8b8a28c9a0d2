select invoice_id, account_id, subscription_id, amount, upper(trim(currency)) as currency,
       {{ canonical_value('invoice_status', 'status') }} as status, issued_at
from {{ clean_rows('invoices') }}
