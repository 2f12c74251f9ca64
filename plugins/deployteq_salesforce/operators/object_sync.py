"""Import path kept for DAGs written against earlier releases; the code lives in ``deployteq_salesforce.flows.object_links.operator``."""

from deployteq_salesforce.flows.object_links.operator import (  # noqa: F401
    ObjectLinkSyncOperator,
)

__all__ = ['ObjectLinkSyncOperator']
