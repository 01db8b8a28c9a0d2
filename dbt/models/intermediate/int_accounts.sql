-- Real accounts only: test accounts stop here.
select * exclude (is_test_account)
from {{ ref('stg_accounts') }}
where not is_test_account
