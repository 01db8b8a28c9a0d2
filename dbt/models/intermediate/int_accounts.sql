-- Real accounts only: test accounts stop here.
select
    account_id,
    hubspot_company_id,
    salesforce_account_id,
    account_name,
    domain,
    industry,
    employee_band,
    country,
    revenue_band,
    founded_year,
    created_at
from {{ ref('stg_accounts') }}
where not is_test_account
