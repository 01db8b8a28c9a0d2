-- The CRM's own record ids of every lead: what activation writes scores onto (existing records, by id;
-- by e-mail for HubSpot contacts whose id the export lacks). Same population as int_leads.
select
    lead_id,
    email,
    hubspot_contact_id,
    salesforce_lead_id,
    salesforce_contact_id
from {{ ref('int_leads') }}
