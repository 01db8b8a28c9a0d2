-- Maps every valid contact id, including merged duplicates, to the lead it belongs to.
select contact_id, contact_id as lead_id from {{ ref('stg_contacts') }}
union all
select {{ unnest_array('merged_contact_ids') }} as contact_id, contact_id as lead_id
from {{ ref('stg_contacts') }}
