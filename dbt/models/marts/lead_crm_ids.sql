-- The CRM's own record ids of every lead: what activation writes scores onto (existing records, by id;
-- by e-mail for HubSpot contacts whose id the export lacks). Same population as int_leads. The owner,
-- the current consent and the name travel along for the workflow (alerts, tasks, digests).
select
    lead_id,
    account_id,
    email,
    nullif(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')), '') as lead_name,
    hubspot_contact_id,
    salesforce_lead_id,
    salesforce_contact_id,
    owner_user_id,
    has_marketing_consent
from {{ ref('int_leads') }}
