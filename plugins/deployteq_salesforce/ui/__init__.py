"""The "Integrations -> Salesforce" pages in the Airflow UI (R16).

``app.create_app()`` builds the FastAPI app the plugin mounts on the API server; the other
modules are pure view-model logic (no Airflow imports) so they are quick to test.
"""
