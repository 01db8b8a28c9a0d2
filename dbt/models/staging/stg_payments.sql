select payment_id, invoice_id, amount, paid_at
from {{ clean_rows('payments') }}
