"""Import path kept for DAGs written against earlier releases; the code lives in ``deployteq_salesforce.flows.contact_moments.operator``."""

from deployteq_salesforce.flows.contact_moments.operator import (  # noqa: F401
    ContactMomentsToSalesforceOperator,
)

__all__ = ['ContactMomentsToSalesforceOperator']
