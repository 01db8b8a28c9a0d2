-- One row per lead at a real account, with the account's firmographics and the moment it converted:
-- the close of the first won opportunity whose primary contact is the lead (or one of its merged
-- duplicates). A won opportunity is what creates the paying subscription (see stg_subscriptions).
with conversions as (
    select identity.lead_id, min(opp.closed_at) as converted_at
    from {{ ref('stg_opportunities') }} as opp
    join {{ ref('int_contact_identity') }} as identity on identity.contact_id = opp.contact_id
    where opp.is_won
    group by identity.lead_id
)

select
    contacts.contact_id as lead_id,
    contacts.hubspot_contact_id,
    contacts.salesforce_lead_id,
    contacts.salesforce_contact_id,
    -- as for accounts: a deleted user owns nothing
    users.user_id as owner_user_id,
    contacts.account_id,
    contacts.email,
    contacts.first_name,
    contacts.last_name,
    contacts.title,
    contacts.seniority,
    contacts.department,
    contacts.lead_source,
    contacts.utm_campaign,
    contacts.has_marketing_consent,
    contacts.created_at,
    accounts.industry,
    accounts.employee_band,
    accounts.country,
    accounts.territory,
    accounts.revenue_band,
    accounts.founded_year,
    conversions.converted_at
from {{ ref('stg_contacts') }} as contacts
join {{ ref('int_accounts') }} as accounts using (account_id)
left join conversions on conversions.lead_id = contacts.contact_id
left join {{ ref('stg_crm_users') }} as users on users.user_id = contacts.owner_user_id
