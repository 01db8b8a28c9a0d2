-- Maps every valid contact id, including merged duplicates, to the lead it belongs to.
select contact_id, contact_id as lead_id from {{ ref('stg_contacts') }}
union all
select unnest(merged_contact_ids) as contact_id, contact_id as lead_id
from {{ ref('stg_contacts') }}
where len(merged_contact_ids) > 0
