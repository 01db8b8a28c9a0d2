{{ config(meta={'dagster': {'ref': {'name': 'quarantine'}}}) }}
-- Nothing is silently dropped: every raw contact is a lead, a merged duplicate or quarantined, and
-- every raw event is in staging or quarantined.
with counts as (
    select 'contacts' as source_table,
           (select count(*) from {{ source('raw', 'contacts') }}) as raw_rows,
           (select count(*) from {{ ref('int_contact_identity') }})
           + (select count(*) from {{ ref('quarantine') }} where source_table = 'contacts') as accounted
    union all
    select 'marketing_events',
           (select count(*) from {{ source('raw', 'marketing_events') }}),
           (select count(*) from {{ ref('stg_marketing_events') }})
           + (select count(*) from {{ ref('quarantine') }}
              where source_table = 'marketing_events' and reason not like 'contact quarantined:%')
)
select * from counts where raw_rows <> accounted
