"""Web layer: FastAPI application factories and the built front end (``static/``)."""
