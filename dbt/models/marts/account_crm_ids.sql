-- The CRM's own record ids of every real account: what activation writes account metrics onto.
select
    account_id,
    hubspot_company_id,
    salesforce_account_id,
    owner_user_id,
    territory
from {{ ref('int_accounts') }}
