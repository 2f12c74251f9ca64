"""One FastAPI router per area of the Salesforce pages; ``ui.app.create_app`` includes them all."""
