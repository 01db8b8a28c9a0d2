-- A table, not a view like the other staging models: a dozen models and tests read it every build,
-- and a view would deduplicate and normalise CRM ids again for each (seconds each at the bench scale).
{{ config(materialized='table') }}
-- One row per person: contacts are deduplicated on their normalised email, keeping the earliest
-- created record. The ids of the merged duplicates travel along in `merged_contact_ids`, so their
-- activity and opportunities can still be attributed (int_contact_identity) - nothing is lost.
-- The CRM ids survive the merge too: HubSpot keeps one contact per address, so any merged record's
-- HubSpot id names the person's contact; a merged record that became a Salesforce Contact is where the
-- person now lives in Salesforce. The Lead id stays the surviving record's own.
with clean as (
    select
        contact_id,
        {{ clean_hubspot_id('hubspot_contact_id') }} as hubspot_contact_id,
        {{ normalize_salesforce_id('salesforce_lead_id') }} as salesforce_lead_id,
        {{ normalize_salesforce_id('salesforce_contact_id') }} as salesforce_contact_id,
        nullif(trim(owner_user_id), '') as owner_user_id,
        account_id,
        lower(trim(email)) as email,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        nullif(trim(title), '') as title,
        {{ title_seniority('title') }} as seniority,
        {{ title_department('title') }} as department,
        {{ descriptive_value('lead_source', 'lead_source') }} as lead_source,
        lower(trim(utm_campaign)) as utm_campaign,
        coalesce(marketing_consent, false) as has_marketing_consent,
        created_at,
        row_number() over (partition by lower(trim(email)) order by created_at, contact_id) as rank_in_email
    from {{ clean_rows('contacts') }}
),

duplicates as (
    select
        email,
        {{ sorted_string_array_agg('contact_id') }} as merged_contact_ids,
        -- the earliest merged record that has one
        min_by(hubspot_contact_id, rank_in_email) filter (where hubspot_contact_id is not null)
            as hubspot_contact_id,
        min_by(salesforce_contact_id, rank_in_email) filter (where salesforce_contact_id is not null)
            as salesforce_contact_id,
        min_by(owner_user_id, rank_in_email) filter (where owner_user_id is not null) as owner_user_id
    from clean
    where rank_in_email > 1
    group by email
)

select
    clean.contact_id,
    coalesce(clean.hubspot_contact_id, duplicates.hubspot_contact_id) as hubspot_contact_id,
    clean.salesforce_lead_id,
    coalesce(clean.salesforce_contact_id, duplicates.salesforce_contact_id) as salesforce_contact_id,
    -- the surviving record's owner; a merged record's when it has none (someone works the person there)
    coalesce(clean.owner_user_id, duplicates.owner_user_id) as owner_user_id,
    clean.account_id,
    clean.email,
    clean.first_name,
    clean.last_name,
    clean.title,
    clean.seniority,
    clean.department,
    clean.lead_source,
    clean.utm_campaign,
    clean.has_marketing_consent,
    clean.created_at,
    coalesce(duplicates.merged_contact_ids, {{ empty_string_array() }}) as merged_contact_ids
from clean
left join duplicates using (email)
where clean.rank_in_email = 1
