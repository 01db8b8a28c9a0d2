-- The CRM's users (sales reps), normalised: the owners of accounts and leads, and where alerts, tasks
-- and digests go. Their CRM ids are what tasks are assigned to (HubSpot owner id, Salesforce User id).
select
    user_id,
    {{ clean_hubspot_id('hubspot_owner_id') }} as hubspot_owner_id,
    {{ normalize_salesforce_id('salesforce_user_id') }} as salesforce_user_id,
    trim(full_name) as full_name,
    nullif(lower(trim(email)), '') as email,
    nullif(trim(team), '') as team,
    {{ descriptive_value('territory', 'territory') }} as territory,
    -- a user the export does not mark inactive is taken as active: CRMs export the flag for every user
    coalesce(is_active, true) as is_active,
    created_at
from {{ clean_rows('crm_users') }}
