"""``make soak``: the integration on a real, distributed Airflow under load and faults (see ``__main__``)."""
