-- Accounts, normalised. Test accounts are kept here with a flag (they are valid rows) and excluded
-- from everything downstream in intermediate. Descriptive columns outside their known lists become
-- 'other' (none given: 'unknown'); staging.unknown_values lists the raw values (macros/known_values.sql).
select
    account_id,
    {{ clean_hubspot_id('hubspot_company_id') }} as hubspot_company_id,
    {{ normalize_salesforce_id('salesforce_account_id') }} as salesforce_account_id,
    nullif(trim(owner_user_id), '') as owner_user_id,
    trim(account_name) as account_name,
    lower(trim(domain)) as domain,
    {{ descriptive_value('industry', 'industry') }} as industry,
    {{ descriptive_value('employee_band', 'employee_band') }} as employee_band,
    {{ descriptive_value('country', 'country') }} as country,
    {{ descriptive_value('revenue_band', 'revenue_band') }} as revenue_band,
    founded_year,
    created_at,
    (lower(account_name) like '%test%' or lower(trim(domain)) in ('example.com', 'test.com')) as is_test_account
from {{ clean_rows('accounts') }}
