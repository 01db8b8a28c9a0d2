-- Email and web activity, with the page category derived from the URL path.
select
    event_id,
    contact_id,
    {{ canonical_value('event_type', 'event_type') }} as event_type,
    page_path,
    case
        when page_path like '/pricing%' then 'pricing'
        when page_path like '/customers/%' then 'case_study'
        when page_path like '/docs%' then 'docs'
        when page_path like '/blog%' then 'blog'
        when page_path like '/demo%' then 'demo'
        when page_path is null then null
        else 'other'
    end as page_category,
    occurred_at,
    _loaded_at as loaded_at
from {{ clean_rows('marketing_events') }}
