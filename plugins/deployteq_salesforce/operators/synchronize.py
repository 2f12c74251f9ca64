"""Import path kept for DAGs written against earlier releases; the code lives in ``deployteq_salesforce.flows.synchronize.operator``."""

from deployteq_salesforce.flows.synchronize.operator import (  # noqa: F401
    SalesforceSynchronizeOperator,
    SynchronizeExitBranchOperator,
    synchronize_exit_ids,
    synchronize_exit_outcomes,
    synchronize_exits,
)

__all__ = ['SalesforceSynchronizeOperator', 'SynchronizeExitBranchOperator', 'synchronize_exit_ids', 'synchronize_exit_outcomes', 'synchronize_exits']
