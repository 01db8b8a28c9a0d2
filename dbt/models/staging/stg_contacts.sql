-- One row per person: contacts are deduplicated on their normalised email, keeping the earliest
-- created record. The ids of the merged duplicates travel along in `merged_contact_ids`, so their
-- activity and opportunities can still be attributed (int_contact_identity) - nothing is lost.
with clean as (
    select
        contact_id,
        account_id,
        lower(trim(email)) as email,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        nullif(trim(title), '') as title,
        {{ title_seniority('title') }} as seniority,
        {{ title_department('title') }} as department,
        coalesce(lower(trim(lead_source)), 'unknown') as lead_source,
        lower(trim(utm_campaign)) as utm_campaign,
        coalesce(marketing_consent, false) as has_marketing_consent,
        created_at,
        row_number() over (partition by lower(trim(email)) order by created_at, contact_id) as rank_in_email
    from {{ clean_rows('contacts') }}
),

duplicates as (
    select email, list(contact_id order by contact_id) as merged_contact_ids
    from clean
    where rank_in_email > 1
    group by email
)

select
    clean.* exclude (rank_in_email),
    coalesce(duplicates.merged_contact_ids, []::varchar[]) as merged_contact_ids
from clean
left join duplicates using (email)
where clean.rank_in_email = 1
