-- Real accounts only: test accounts stop here. An owner the users export does not contain (a deleted
-- user) is no owner: nobody would receive its alerts, so routing treats the account as unowned.
select
    accounts.account_id,
    accounts.hubspot_company_id,
    accounts.salesforce_account_id,
    users.user_id as owner_user_id,
    accounts.account_name,
    accounts.domain,
    accounts.industry,
    accounts.employee_band,
    accounts.country,
    {{ territory_of('accounts.country') }} as territory,
    accounts.revenue_band,
    accounts.founded_year,
    accounts.created_at
from {{ ref('stg_accounts') }} as accounts
left join {{ ref('stg_crm_users') }} as users on users.user_id = accounts.owner_user_id
where not accounts.is_test_account
