"""Import path kept for DAGs written against earlier releases; the code lives in ``deployteq_salesforce.flows.customers.operator``."""

from deployteq_salesforce.flows.customers.operator import (  # noqa: F401
    OBJECTS_VARIABLE,
    SalesforceToDeployteqOperator,
)

__all__ = ['OBJECTS_VARIABLE', 'SalesforceToDeployteqOperator']
