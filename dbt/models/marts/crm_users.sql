-- The CRM's users (sales reps) with their ids in each CRM: who owns leads and accounts, who receives
-- alerts as CRM tasks (assigned by HubSpot owner id / Salesforce User id) and the morning digest.
select
    user_id,
    full_name,
    email,
    team,
    territory,
    is_active,
    hubspot_owner_id,
    salesforce_user_id
from {{ ref('stg_crm_users') }}
