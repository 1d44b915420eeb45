"""The web console: a single page (ES modules and CSS, no build step) served by the service
at /console, and the catalogue it builds its forms from (catalog.py)."""
